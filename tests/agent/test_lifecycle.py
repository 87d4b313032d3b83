"""POST /restart, POST /redeploy (release switching under DTMA_HOME) and the heartbeat to the backend."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from dtma_testing import BUSYBOX, free_port, wait_until

from dtma_agent import __version__


def exits_within(agent, seconds: float) -> bool:
    try:
        agent.proc.wait(seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def still_running(agent, seconds: float = 1.0) -> bool:
    """True when the agent has not exited for `seconds` (the exit after a 202 comes within 0.3 s) and answers."""
    return not exits_within(agent, seconds) and requests.get(agent.url + "/health", timeout=5).status_code == 200


# --- restart --------------------------------------------------------------------------------------------

def test_restart_answers_202_then_exits(make_agent):
    a = make_agent()
    boot_id = requests.get(a.url + "/health", timeout=5).json()["boot_id"]
    r = a.post("/restart")
    assert r.status_code == 202, r.text
    assert r.json()["success"] is True and r.json()["boot_id"] == boot_id
    assert exits_within(a, 5), "the agent did not exit after POST /restart"
    assert not a.answers()


# --- redeploy -------------------------------------------------------------------------------------------

def write_release(home: Path, version: str, script: str | None = None) -> Path:
    binary = home / "releases" / version / "bin" / "dtma-agent"
    binary.parent.mkdir(parents=True)
    binary.write_text(script or f'#!/bin/sh\necho "dtma-agent {version}"\n')
    binary.chmod(0o755)
    return binary


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "dtma-home"
    write_release(home, "1.0.0")
    write_release(home, "1.1.0")
    write_release(home, "2.0.0-broken", '#!/bin/sh\necho "cannot start" >&2\nexit 1\n')
    (home / "releases" / "3.0.0-nobinary").mkdir()
    os.symlink("releases/1.0.0", home / "current")
    return home


def links(home: Path) -> dict:
    return {n: os.readlink(home / n) if (home / n).is_symlink() else None for n in ("current", "previous")}


def test_redeploy_without_dtma_home_is_409(agent):
    r = agent.post("/redeploy", json={"version": "1.1.0"})
    assert r.status_code == 409, r.text
    out = r.json()
    assert out["success"] is False and "DTMA_HOME" in out["message"]
    assert still_running(agent, 0.5)


def test_redeploy_switches_current_and_previous_then_exits(make_agent, home):
    a = make_agent(env={"DTMA_HOME": str(home)})
    r = a.post("/redeploy", json={"version": "1.1.0"})
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["success"] is True
    assert out["data"]["changed"] is True
    assert out["data"]["current"] == "1.1.0" and out["data"]["previous"] == "1.0.0"
    assert out["data"]["reported_version"] == "dtma-agent 1.1.0"
    assert links(home) == {"current": "releases/1.1.0", "previous": "releases/1.0.0"}
    assert (home / "current" / "bin" / "dtma-agent").resolve() == (home / "releases/1.1.0/bin/dtma-agent").resolve()
    assert not any(p.name.startswith(".") for p in home.iterdir()), "a temporary symlink was left behind"
    assert exits_within(a, 5), "the agent did not exit after switching releases"


def test_redeploy_previous_rolls_back(make_agent, home):
    first = make_agent(env={"DTMA_HOME": str(home)})
    assert first.post("/redeploy", json={"version": "1.1.0"}).status_code == 202
    assert exits_within(first, 5)

    # the service manager would start the new release; a fresh agent on the same DTMA_HOME stands in for it
    second = make_agent(env={"DTMA_HOME": str(home)})
    r = second.post("/redeploy", json={"version": "previous"})
    assert r.status_code == 202, r.text
    assert r.json()["data"]["current"] == "1.0.0" and r.json()["data"]["previous"] == "1.1.0"
    assert links(home) == {"current": "releases/1.0.0", "previous": "releases/1.1.0"}
    assert exits_within(second, 5)


def test_redeploy_refusals_change_nothing_and_keep_running(make_agent, home):
    a = make_agent(env={"DTMA_HOME": str(home)})
    before = links(home)

    r = a.post("/redeploy", json={"version": "9.9.9"})
    assert r.status_code == 404, r.text
    assert "9.9.9" in r.json()["message"] and "1.1.0" in r.json()["message"]  # names what is known
    assert links(home) == before

    r = a.post("/redeploy", json={"version": "2.0.0-broken"})
    assert r.status_code == 422, r.text
    assert "cannot start" in r.json()["message"]
    assert links(home) == before

    r = a.post("/redeploy", json={"version": "3.0.0-nobinary"})
    assert r.status_code == 422, r.text
    assert links(home) == before

    r = a.post("/redeploy", json={"version": "previous"})  # there is no previous release yet
    assert r.status_code == 404, r.text
    assert links(home) == before

    r = a.post("/redeploy", json={"version": "1.0.0"})
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True and r.json()["data"]["changed"] is False
    assert links(home) == before

    assert still_running(a)


def test_redeploy_bad_version_is_422(make_agent, home):
    (home / "etc").mkdir()  # so that "../etc" would name a directory if it were followed
    a = make_agent(env={"DTMA_HOME": str(home)})
    before = links(home)
    for version in ("../etc", "a/b", "..", ".", "/etc", "", "1.0.0;id", "x" * 65, 1.1, None):
        r = a.post("/redeploy", json={"version": version})
        assert r.status_code == 422, (version, r.text)
        assert "version" in [f["field"] for f in r.json()["fields"]], version
    assert links(home) == before
    assert still_running(a, 0.5)


def test_redeploy_needs_a_version(agent):
    r = agent.post("/redeploy", json={})
    assert r.status_code == 422
    assert "version" in [f["field"] for f in r.json()["fields"]]


# --- heartbeat ------------------------------------------------------------------------------------------

class Backend:
    """A tiny HTTP server on 127.0.0.1 that records POSTs and answers with `status`."""

    def __init__(self, status: int = 200):
        self.posts: list[dict] = []
        self.status = status
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = None
                backend.posts.append({"path": self.path, "headers": dict(self.headers), "json": payload})
                self.send_response(backend.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def heartbeats(self) -> list[dict]:
        return [p for p in list(self.posts) if p["path"] == "/heartbeat"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend():
    made: list[Backend] = []

    def make(status: int = 200) -> Backend:
        made.append(Backend(status))
        return made[-1]

    yield make
    for b in made:
        b.close()


def test_heartbeat_posts_status_with_the_agent_token(make_agent, backend, cleanup, name):
    b = backend()
    a = make_agent(env={"AGENTOPIA_API_BASE_URL": b.url + "/", "DTMA_HEARTBEAT_INTERVAL": "0.5"})
    assert wait_until(lambda: len(b.heartbeats()) >= 2, 5), f"{len(b.heartbeats())} heartbeats in 5 s"
    for beat in b.heartbeats()[:2]:
        assert beat["headers"].get("Authorization") == f"Bearer {a.token}"
        payload = beat["json"]
        assert payload["dtma_version"] == __version__
        assert payload["system_status"]["docker"] is True
        assert {"cpu_load_percent", "memory", "disk"} <= set(payload["system_status"])
        assert isinstance(payload["tool_statuses"], list)

    tool, account = name("beat"), name("acct")
    cleanup.append(tool)
    r = a.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": tool, "accountToolInstanceId": account,
                               "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}})
    assert r.status_code == 201, r.text

    sent_before = len(b.heartbeats())

    def reported():
        # a heartbeat sent after the deploy answered (an earlier one may have caught it being created)
        for beat in b.heartbeats()[sent_before:]:
            for status in beat["json"]["tool_statuses"]:
                # one built while the deploy was still under way may say "created"; a later one must say running
                if status["account_tool_instance_id"] == account and status["state"] == "running":
                    return status
        return None

    status = wait_until(reported, 5)
    assert status, "the deployed tool never appeared running in a heartbeat"
    assert status["instance_name_on_toolbox"] == tool
    assert status["container_id"] == r.json()["data"]["container_id"]
    assert a.token not in a.log()


def test_no_heartbeat_in_offline_mode(make_agent, backend):
    b = backend()
    a = make_agent(env={"AGENTOPIA_API_BASE_URL": b.url, "DTMA_HEARTBEAT_INTERVAL": "0.5", "OFFLINE_MODE": "true"})
    assert not wait_until(lambda: b.posts, 2), "a heartbeat was sent in offline mode"
    assert a.get("/status").json()["environment"]["hasApiBaseUrl"] is True


def test_no_heartbeat_without_a_base_url(make_agent, backend):
    b = backend()  # running, but the agent is not told about it
    make_agent(env={"DTMA_HEARTBEAT_INTERVAL": "0.5"})
    assert not wait_until(lambda: b.posts, 1.5)


def test_backend_answering_500_is_not_fatal(make_agent, backend):
    b = backend(status=500)
    a = make_agent(env={"AGENTOPIA_API_BASE_URL": b.url, "DTMA_HEARTBEAT_INTERVAL": "0.5"})
    assert wait_until(lambda: len(b.heartbeats()) >= 3, 5), "the agent stopped sending after a 500"
    assert a.proc.poll() is None
    assert requests.get(a.url + "/health", timeout=5).status_code == 200
    assert a.get("/status").status_code == 200
    assert wait_until(lambda: "HTTP 500" in a.log(), 5)


def test_unreachable_backend_is_not_fatal(make_agent):
    closed = free_port()
    a = make_agent(env={"AGENTOPIA_API_BASE_URL": f"http://127.0.0.1:{closed}", "DTMA_HEARTBEAT_INTERVAL": "0.5"})
    assert wait_until(lambda: a.log().count("heartbeat to") >= 2, 5), a.log()
    assert a.proc.poll() is None
    assert requests.get(a.url + "/health", timeout=5).status_code == 200
    assert a.get("/tools/status").status_code == 200
