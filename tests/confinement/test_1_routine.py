"""Routine operator commands, sent for real to the installed agent: at least 97 % must run and exit 0 confined.
The commands are in routine.py; failures are listed with their stderr in the session summary."""

from __future__ import annotations

import time

import pytest

from confinement_env import RESULTS
from routine import REFUSED_BY_POLICY, ROUTINE, SHOW

# the first test also installs the droplet (about a minute) and runs every attack
pytestmark = pytest.mark.timeout(900)


def test_routine_commands_succeed_confined(droplet):
    t0 = time.monotonic()
    assert len(ROUTINE) >= 150
    results = []
    for template in ROUTINE:
        command = template.replace("@MCP@", droplet.mcp).replace("@PORT@", str(droplet.port))
        code, body = droplet.execute(command, timeout_ms=30000)
        body = body if isinstance(body, dict) else {"stderr": str(body)}
        results.append({"command": command, "status": code, "ok": code == 200 and body.get("exit_code") == 0,
                        "exit_code": body.get("exit_code"), "rule": body.get("rule"), "reason": body.get("reason"),
                        "stdout": (body.get("stdout") or "")[:2000], "stderr": (body.get("stderr") or "")[:2000],
                        "show": template in SHOW})
    droplet.root("find /var/lib/dtma/scratch -mindepth 1 -delete 2>/dev/null; true")
    RESULTS["routine"] = results
    RESULTS["timings"]["routine_s"] = round(time.monotonic() - t0, 1)
    ok = sum(r["ok"] for r in results)
    failed = [f"{r['command']!r}: {r['status']} exit={r['exit_code']} {r['rule'] or ''} {r['reason'] or ''} "
              f"{r['stderr'][:200]!r}" for r in results if not r["ok"]]
    RESULTS["timings"]["routine_rate_with_refused"] = f"{ok}/{len(results) + len(REFUSED_BY_POLICY)}"
    assert ok / len(results) >= 0.97, f"{ok}/{len(results)} succeeded; failures:\n" + "\n".join(failed)


@pytest.mark.parametrize("command, rule", sorted(REFUSED_BY_POLICY.items()))
def test_commands_the_policy_still_refuses(droplet, command, rule):
    code, body = droplet.execute(command, timeout_ms=10000)
    assert code == 403 and body.get("rule") == rule, (
        f"{command!r} is no longer refused by {rule} ({code}: {body}); move it to ROUTINE in routine.py")


def test_the_agents_journal_is_readable_and_other_units_are_not(droplet):
    code, body = droplet.execute("journalctl -u dtma -n 20 --no-pager")
    entries = body["stdout"].splitlines() if code == 200 else []
    assert body.get("exit_code") == 0 and sum(" dtma[" in e for e in entries) >= 10, body
    code, body = droplet.execute("journalctl -u cron -n 5 --no-pager")
    assert code == 200 and body["exit_code"] == 1 and "not readable for executed commands" in body["stderr"], body
