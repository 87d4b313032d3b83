"""GET /diagnostics/audit: the newest audit entries of the agent process with the asked verdicts (default the blocked
ones), newest first, for the fleet health report. Real agent processes; the blocked commands are refused by the
policy, so nothing of them runs (and both would be harmless in the sandbox anyway)."""

from __future__ import annotations

import pytest
import requests

from dtma_testing import Agent

BLOCKED = ["cat /etc/shadow", "frobnicate --now"]


@pytest.fixture(scope="module")
def audited(tmp_path_factory, docker_api):
    """An agent of its own (its in-memory trail holds only this test's requests): two blocked commands, one executed,
    one dry run."""
    a = Agent(tmp_path_factory.mktemp("audit")).start()
    for command in BLOCKED:
        assert a.post("/ssh/execute", json={"command": command}).status_code == 403
    assert a.post("/ssh/execute", json={"command": "echo fine"}).status_code == 200
    assert a.post("/ssh/execute", json={"command": "reboot", "dry_run": True}).json()["allowed"] is False
    yield a
    a.stop()


def test_blocked_commands_newest_first_by_default(audited):
    r = audited.get("/diagnostics/audit")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["timestamp"]
    assert body["verdicts"] == ["blocked", "docker_denied"]
    assert [e["command"] for e in body["entries"]] == BLOCKED[::-1]
    assert body["count"] == 2
    first = body["entries"][0]
    assert first["verdict"] == "blocked" and first["rule"] and first["reason"] and first["time"]
    assert first["token_id"] == "agent" and first["client"] == "127.0.0.1"
    assert "since its start" in body["source"]
    assert audited.token not in r.text


def test_limit_and_verdicts(audited):
    one = audited.get("/diagnostics/audit", params={"limit": 1}).json()
    assert [e["command"] for e in one["entries"]] == [BLOCKED[-1]]
    executed = audited.get("/diagnostics/audit", params={"verdict": ["executed", "dry_run:blocked"]}).json()
    assert [(e["verdict"], e["command"]) for e in executed["entries"]] == [
        ("dry_run:blocked", "reboot"), ("executed", "echo fine")]
    assert executed["entries"][1]["exit_code"] == 0
    none = audited.get("/diagnostics/audit", params={"verdict": "rejected"}).json()
    assert none["entries"] == [] and none["count"] == 0


@pytest.mark.parametrize("params, field", [
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": "1e3"}, "limit"),
    ({"verdict": "allowed"}, "verdict"), ({"verdict": ["blocked", "BLOCKED"]}, "verdict"),
    ({"verdict": ["blocked"] * 7}, "verdict"),
])
def test_bad_queries_are_422_naming_the_field(audited, params, field):
    r = audited.get("/diagnostics/audit", params=params)
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["success"] is False
    assert any(f["field"].split(".")[0] == field for f in out["fields"]), out
    assert field in out["message"]


def test_needs_the_token(audited):
    r = requests.get(audited.url + "/diagnostics/audit", timeout=10)
    assert r.status_code == 401
