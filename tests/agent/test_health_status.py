"""GET /health, /status and /system, with Docker up, down and back."""

from __future__ import annotations

import re
import socket
import subprocess
import secrets
import time
from datetime import datetime, timedelta, timezone

import docker
import requests
from dtma_testing import BUSYBOX

from dtma_agent import __version__

# Docker is checked in the background: /health reports a finding at most this old, and an outage within it
MAX_AGE_S = 2.0
STATUS_KEYS = {"success", "status", "timestamp", "version", "service", "environment", "tool_instances", "system_metrics"}


def parse_timestamp(value: str) -> datetime:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert when.tzinfo is not None
    assert abs(datetime.now(timezone.utc) - when) < timedelta(minutes=5)
    return when


def health(agent) -> tuple[int, dict]:
    r = requests.get(agent.url + "/health", timeout=10)
    return r.status_code, r.json()


def seconds_until_health(agent, code: int, limit: float = 10.0) -> float:
    """How long until /health answers `code`; fails when it does not within `limit`."""
    started = time.monotonic()
    while health(agent)[0] != code:
        assert time.monotonic() - started < limit, f"/health never answered {code}: {health(agent)}"
        time.sleep(0.02)
    return time.monotonic() - started


def assert_system_metrics(metrics: dict) -> None:
    assert set(metrics) >= {"cpu_load_percent", "memory", "disk"}
    assert isinstance(metrics["cpu_load_percent"], (int, float)) and 0 <= metrics["cpu_load_percent"] <= 100
    memory = metrics["memory"]
    assert set(memory) >= {"total_bytes", "used_bytes", "free_bytes", "active_bytes"}
    keys = ("total_bytes", "used_bytes", "free_bytes", "active_bytes")
    assert all(isinstance(memory[k], int) and memory[k] >= 0 for k in keys)
    assert memory["total_bytes"] > 0
    assert memory["total_bytes"] >= memory["used_bytes"] > 0
    assert memory["total_bytes"] >= memory["free_bytes"]
    assert memory["total_bytes"] >= memory["active_bytes"]
    disk = metrics["disk"]
    assert set(disk) >= {"mount", "total_bytes", "used_bytes", "free_bytes"}
    assert disk["mount"] == "/"
    assert disk["total_bytes"] > 0
    assert disk["total_bytes"] >= disk["used_bytes"] > 0
    assert disk["total_bytes"] >= disk["free_bytes"]


def test_health_fields(agent):
    r = requests.get(agent.url + "/health", timeout=10)
    assert r.status_code == 200
    out = r.json()
    assert out["status"] == "ok"
    assert out["docker"] is True
    assert out["version"] == __version__
    assert isinstance(out["uptime_s"], (int, float)) and out["uptime_s"] >= 0
    assert re.fullmatch(r"[0-9a-f]{32}", out["boot_id"])
    assert out["docker_check"]["error"] is None and 0 <= out["docker_check"]["age_ms"] <= MAX_AGE_S * 1000
    parse_timestamp(out["timestamp"])
    again = requests.get(agent.url + "/health", timeout=10).json()
    assert again["boot_id"] == out["boot_id"]
    assert again["uptime_s"] >= out["uptime_s"]


def test_status_fields(agent):
    r = agent.get("/status")
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) >= STATUS_KEYS
    assert out["success"] is True
    assert out["status"] == "healthy"
    assert out["version"] == __version__
    assert out["service"] == "DTMA"
    parse_timestamp(out["timestamp"])
    assert out["environment"] == {"hasAuthToken": True, "hasApiKey": False, "hasApiBaseUrl": False, "port": agent.port}
    assert isinstance(out["tool_instances"], list)
    assert_system_metrics(out["system_metrics"])
    assert out["boot_id"] == requests.get(agent.url + "/health", timeout=10).json()["boot_id"]


def test_status_environment_reflects_settings(make_agent):
    a = make_agent(env={"BACKEND_TO_DTMA_API_KEY": secrets.token_hex(24),
                        "AGENTOPIA_API_BASE_URL": "http://127.0.0.1:9", "OFFLINE_MODE": "true"})
    env = a.get("/status").json()["environment"]
    assert env == {"hasAuthToken": True, "hasApiKey": True, "hasApiBaseUrl": True, "port": a.port}


def test_status_lists_managed_containers_only(agent, docker_api, cleanup, name):
    unmanaged, tool = name("unmanaged"), name("managed")
    cleanup += [unmanaged, tool]
    cid = docker_api.create_container(BUSYBOX, command=["sleep", "3600"], name=unmanaged,
                                      labels={"agentopia.kind": "tool"})["Id"]
    docker_api.start(cid)
    r = agent.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": tool,
                                   "accountToolInstanceId": "acct-status", "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}})
    assert r.status_code == 201, r.text

    instances = agent.get("/status").json()["tool_instances"]
    by_name = {i["name"]: i for i in instances}
    assert unmanaged not in by_name
    assert tool in by_name
    assert by_name[tool]["account_tool_instance_id"] == "acct-status"
    assert by_name[tool]["state"] == "running"
    assert by_name[tool]["container_id"] == r.json()["data"]["container_id"]
    # every listed container really is managed, according to Docker
    for instance in instances:
        try:
            labels = docker_api.inspect_container(instance["container_id"])["Config"]["Labels"]
        except docker.errors.NotFound:
            continue  # removed meanwhile by other work on this engine
        assert labels.get("agentopia.managed_by") == "dtma"


def test_system(agent):
    r = agent.get("/system")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] is True
    parse_timestamp(out["timestamp"])
    assert_system_metrics(out["system_metrics"])


def test_docker_down_then_recovery(make_agent, docker_proxy, cleanup, name):
    a = make_agent(env={"DOCKER_HOST": docker_proxy.docker_host})
    tool = name("downup")
    cleanup.append(tool)
    r = a.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": tool,
                               "accountToolInstanceId": "acct-downup", "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}})
    assert r.status_code == 201, r.text
    assert a.get("/health").status_code == 200

    docker_proxy.stop()
    try:
        assert seconds_until_health(a, 503) < MAX_AGE_S
        r = requests.get(a.url + "/health", timeout=10)
        assert r.status_code == 503
        out = r.json()
        assert out["docker"] is False and out["status"] == "degraded" and out["version"] == __version__
        assert out["docker_check"]["error"] and out["docker_check"]["age_ms"] <= MAX_AGE_S * 1000

        r = a.get("/status")
        assert r.status_code == 503
        out = r.json()
        assert out["success"] is False
        assert out["error"] == "docker unavailable"
        assert out["service"] == "DTMA" and out["version"] == __version__
        assert out["tool_instances"] == []
        assert_system_metrics(out["system_metrics"])

        r = a.get("/system")
        assert r.status_code == 200  # metrics do not need Docker

        r = a.get("/tools/status")
        assert r.status_code == 503
        assert r.json()["success"] is False and r.json()["error"] == "docker unavailable"

        r = a.post(f"/tools/{tool}/stop?timeout=1")
        assert r.status_code == 503 and r.json()["error"] == "docker unavailable"
    finally:
        docker_proxy.start()

    assert seconds_until_health(a, 200) < MAX_AGE_S
    r = a.get("/status")
    assert r.status_code == 200 and r.json()["success"] is True
    assert tool in [i["name"] for i in r.json()["tool_instances"]]
    r = a.get("/tools/status")
    assert r.status_code == 200
    assert {t["instance_name_on_toolbox"]: t["state"] for t in r.json()["data"]}[tool] == "running"


def test_agent_started_while_docker_is_down_recovers(make_agent, docker_proxy):
    docker_proxy.stop()
    try:
        a = make_agent(env={"DOCKER_HOST": docker_proxy.docker_host})
        assert requests.get(a.url + "/health", timeout=10).status_code == 503
        assert a.get("/tools/status").status_code == 503
        assert health(a)[1]["docker_check"]["error"]
    finally:
        docker_proxy.start()
    assert seconds_until_health(a, 200) < MAX_AGE_S
    assert a.get("/tools/status").status_code == 200


def test_health_does_not_ping_docker_per_request(make_agent, docker_proxy):
    """/health answers from the background watch: 100 requests cost at most the one ping a second it does anyway,
    and the finding it reports is never older than 2 s."""
    a = make_agent(env={"DOCKER_HOST": docker_proxy.docker_host})
    pings_before, started = docker_proxy.pings, time.monotonic()
    ages = []
    for _index in range(100):
        code, body = health(a)
        assert code == 200, body
        ages.append(body["docker_check"]["age_ms"])
    elapsed = time.monotonic() - started
    pings = docker_proxy.pings - pings_before
    assert pings <= elapsed + 2, f"{pings} pings for 100 requests in {elapsed:.2f} s"
    assert max(ages) <= MAX_AGE_S * 1000, ages
    # and the watch keeps going while nobody asks: about one ping a second
    pings_before = docker_proxy.pings
    time.sleep(3)
    assert 2 <= docker_proxy.pings - pings_before <= 4
    assert health(a)[1]["docker_check"]["age_ms"] <= MAX_AGE_S * 1000


def test_health_turns_503_within_2_s_of_an_outage_and_back(make_agent, docker_proxy):
    """Several outages at random points of the watch's one-second cycle: each is seen within 2 s, each recovery
    within about a second."""
    a = make_agent(env={"DOCKER_HOST": docker_proxy.docker_host})
    for offset in (0.0, 0.3, 0.7):
        time.sleep(offset)
        docker_proxy.stop()
        try:
            down = seconds_until_health(a, 503)
            code, body = health(a)
            assert code == 503 and body["docker"] is False and body["status"] == "degraded", body
            assert body["docker_check"]["error"], body
        finally:
            docker_proxy.start()
        up = seconds_until_health(a, 200)
        print(f"outage seen after {down:.2f} s, recovery after {up:.2f} s")
        assert down < MAX_AGE_S and up < 1.5


def test_health_turns_503_when_docker_hangs(make_agent, docker_proxy, tmp_path):
    """An engine that accepts connections but never answers (a frozen dockerd): the pings time out and /health says
    503 within 2 s instead of hanging or reporting an old success."""
    a = make_agent(env={"DOCKER_HOST": docker_proxy.docker_host})
    assert health(a)[0] == 200
    docker_proxy.stop()
    frozen = socket.socket(socket.AF_UNIX)
    frozen.bind(str(docker_proxy.path))
    frozen.listen(64)  # the kernel completes connections; nobody reads or answers them
    try:
        started = time.monotonic()
        assert seconds_until_health(a, 503) < MAX_AGE_S
        assert time.monotonic() - started < MAX_AGE_S + 0.5  # and no /health request hung meanwhile
        body = health(a)[1]
        assert body["docker"] is False and body["docker_check"]["error"], body
    finally:
        frozen.close()
        docker_proxy.path.unlink()
        docker_proxy.start()
    assert seconds_until_health(a, 200) < MAX_AGE_S


def test_full_audit_disk_keeps_the_agent_serving_and_health_says_so(make_agent, tmp_path):
    """The audit log's disk full (a 64 KiB tmpfs, filled): every exec is still answered, /health stays 200 but says
    degraded with the error, the agent's log says why once, and the file recovers when space is back."""
    log_dir = tmp_path / "audit"
    log_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(log_dir)], check=True)
    try:
        agent = make_agent(env={"DTMA_LOG_DIR": str(log_dir)})
        body = requests.get(agent.url + "/health", timeout=5).json()
        assert body["status"] == "ok" and body["audit_log"]["writable"] is True, body
        assert body["audit_log"]["path"] == str(log_dir / "audit.log")
        fill = log_dir / "fill"
        subprocess.run(["dd", "if=/dev/zero", f"of={fill}", "bs=4k"], capture_output=True, check=False)
        for attempt in range(5):
            r = agent.post("/ssh/execute", json={"command": f"echo still-serving-{attempt}", "timeout": 10000})
            assert r.status_code == 200 and r.json()["stdout"] == f"still-serving-{attempt}\n", r.text
        r = requests.get(agent.url + "/health", timeout=5)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "degraded" and body["docker"] is True, body
        assert body["audit_log"]["writable"] is False and "No space left on device" in body["audit_log"]["error"], body
        assert body["audit_log"]["since"], body
        log = agent.log()
        assert log.count("cannot be written") == 1, log[-3000:]  # once per outage, not per line
        assert "No space left on device" in log
        fill.unlink()
        assert agent.post("/ssh/execute", json={"command": "true", "timeout": 10000}).status_code == 200
        body = requests.get(agent.url + "/health", timeout=5).json()
        assert body["status"] == "ok" and body["audit_log"] == {**body["audit_log"], "writable": True, "error": None}, body
        assert "is writable again" in agent.log()
        assert '"command":"true"' in (log_dir / "audit.log").read_text()
    finally:
        subprocess.run(["umount", "-l", str(log_dir)], check=False)


def test_health_with_a_docker_host_that_is_not_a_local_socket(make_agent):
    """DOCKER_HOST=tcp://… is pinged through the docker SDK in a thread; nothing listens there, so 503 and why."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    a = make_agent(env={"DOCKER_HOST": f"tcp://127.0.0.1:{port}"})
    code, body = health(a)
    assert code == 503 and body["docker"] is False and body["status"] == "degraded", body
    assert body["docker_check"]["error"] and body["docker_check"]["age_ms"] <= MAX_AGE_S * 1000, body
