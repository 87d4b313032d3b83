"""GET /diagnostics/docker, /diagnostics/system and /diagnostics/logs in the predecessor's shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from dtma_testing import BUSYBOX, wait_until

COUNTS = ("Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped")


def test_docker_diagnostics(agent, docker_api):
    r = agent.get("/diagnostics/docker")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] is True and out["timestamp"]
    diag = out["diagnostics"]
    assert isinstance(diag["docker_version"], str) and diag["docker_version"]
    assert diag["docker_version"] == docker_api.version()["Version"]
    assert diag["docker_info_success"] is True
    info = diag["docker_info"]
    assert set(info) >= {"ServerVersion", *COUNTS}
    assert info["ServerVersion"] == docker_api.info()["ServerVersion"]
    assert all(isinstance(info[k], int) and info[k] >= 0 for k in COUNTS)
    assert isinstance(diag["containers"], list)
    assert all(isinstance(c["managed"], bool) for c in diag["containers"])


def test_docker_info_counts_match_the_engine(agent, docker_api):
    # other work may create containers meanwhile: compare while the engine's own counts hold still
    def consistent():
        before = docker_api.info()
        ours = agent.get("/diagnostics/docker").json()["diagnostics"]["docker_info"]
        after = docker_api.info()
        same = all(before[k] == ours[k] == after[k] for k in COUNTS)
        return same and ours

    ours = wait_until(consistent, 20, 0.5)
    assert ours, "the agent's counts never matched docker info"
    assert ours["Containers"] == ours["ContainersRunning"] + ours["ContainersPaused"] + ours["ContainersStopped"]


def test_docker_diagnostics_flags_managed_containers(agent, docker_api, cleanup, name):
    unmanaged, tool = name("diag-un"), name("diag-tool")
    cleanup += [unmanaged, tool]
    docker_api.create_container(BUSYBOX, command=["sleep", "3600"], name=unmanaged)
    r = agent.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": tool,
                                   "accountToolInstanceId": "acct-diag", "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}})
    assert r.status_code == 201, r.text
    listed = {c["name"]: c for c in agent.get("/diagnostics/docker").json()["diagnostics"]["containers"]}
    assert listed[unmanaged]["managed"] is False
    assert listed[unmanaged]["state"] == "created"
    assert listed[tool]["managed"] is True
    assert listed[tool]["state"] == "running"
    assert listed[tool]["container_id"] == r.json()["data"]["container_id"]


def test_docker_diagnostics_when_docker_is_down(make_agent, docker_proxy):
    a = make_agent(env={"DOCKER_HOST": docker_proxy.docker_host})
    assert a.get("/diagnostics/docker").status_code == 200
    docker_proxy.stop()
    try:
        r = a.get("/diagnostics/docker")
        assert r.status_code == 503
        out = r.json()
        assert out["success"] is False and out["error"] == "docker unavailable"
        assert out["diagnostics"]["docker_info_success"] is False
        assert out["diagnostics"]["containers"] == []
        # the other diagnostics do not need Docker
        assert a.get("/diagnostics/system").status_code == 200
        r = a.get("/diagnostics/logs", params={"lines": 5})
        assert r.status_code == 200
        assert "error" in r.json()["logs"]["mcp_containers"]
    finally:
        docker_proxy.start()
    r = a.get("/diagnostics/docker")
    assert r.status_code == 200 and r.json()["diagnostics"]["docker_info_success"] is True


def test_system_diagnostics(agent):
    r = agent.get("/diagnostics/system")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] is True and out["timestamp"]
    diag = out["diagnostics"]
    assert set(diag) >= {"uptime", "disk_usage", "memory_info", "top_processes", "dtma_port_status", "environment"}

    assert diag["uptime"]["system_seconds"] > 0
    assert 0 <= diag["uptime"]["agent_seconds"] <= diag["uptime"]["system_seconds"] + 1

    assert isinstance(diag["disk_usage"], list) and diag["disk_usage"]
    for disk in diag["disk_usage"]:
        assert disk["total_bytes"] >= disk["used_bytes"] >= 0

    memory = diag["memory_info"]
    assert memory["total_bytes"] >= memory["used_bytes"] > 0
    assert memory["total_bytes"] >= memory["available_bytes"]

    top = diag["top_processes"]
    assert isinstance(top, list) and top
    assert all({"pid", "name", "rss_bytes"} <= set(p) for p in top)
    assert [p["rss_bytes"] for p in top] == sorted((p["rss_bytes"] for p in top), reverse=True)

    port = diag["dtma_port_status"]
    assert port["port"] == agent.port
    assert port["listening"] is True
    assert f"127.0.0.1:{agent.port}" in port["addresses"]

    env = diag["environment"]
    assert set(env) >= {"runtime_version", "platform", "arch", "pid"}
    assert env["pid"] == agent.proc.pid
    assert env["platform"] == "linux"
    assert env["runtime_version"] and env["arch"]


@pytest.mark.parametrize("lines", [1, 10, 10000])
def test_log_diagnostics_accepts_1_to_10000(agent, lines):
    r = agent.get("/diagnostics/logs", params={"lines": lines})
    assert r.status_code == 200, r.text
    logs = r.json()["logs"]
    assert set(logs) >= {"dtma_service", "mcp_containers", "application_logs"}
    assert isinstance(logs["application_logs"], list) and 1 <= len(logs["application_logs"]) <= lines
    assert isinstance(logs["mcp_containers"], dict)
    for server, server_lines in logs["mcp_containers"].items():
        if isinstance(server_lines, dict):  # a server being removed meanwhile by other work says so
            assert server_lines["error"], server
        else:
            assert isinstance(server_lines, list) and len(server_lines) <= lines, server


@pytest.mark.parametrize("lines", ["0", "10001", "-1", "abc", "5;rm -rf /", "1e3", ""])
def test_log_diagnostics_refuses_bad_lines(agent, lines):
    r = agent.get("/diagnostics/logs", params={"lines": lines})
    assert r.status_code == 422, (lines, r.status_code, r.text)
    out = r.json()
    assert out["success"] is False
    assert "lines" in [f["field"] for f in out["fields"]]
    assert "lines" in out["message"]


def test_log_diagnostics_body(agent):
    requests.get(agent.url + "/health", timeout=10)
    r = agent.get("/diagnostics/logs", params={"lines": 10000})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] is True and out["timestamp"]
    service = out["logs"]["dtma_service"]
    assert isinstance(service, dict) and isinstance(service["available"], bool)
    if not Path("/run/systemd/journal").exists():  # no journald here: say so, with a reason
        assert service["available"] is False
    if service["available"] is False:
        assert isinstance(service["reason"], str) and service["reason"]
    else:
        assert isinstance(service["lines"], list)
    application = out["logs"]["application_logs"]
    assert any("listening" in line for line in application), application[-5:]


def test_log_diagnostics_show_mcp_container_logs(agent, cleanup, name):
    group, talker, mute = name("diaggrp"), name("diagmcp"), name("diagmute")
    cleanup += [talker, mute]
    r = agent.post("/mcp/groups", json={"groupId": group, "servers": [
        {"instanceNameOnToolbox": talker, "dockerImageUrl": BUSYBOX, "mcpTransportType": "stdio",
         "baseConfigOverrideJson": {"Cmd": ["sh", "-c", "echo dtmatest-mcp-says-hi; sleep 3600"]}},
        # a container whose logs Docker cannot read back: its failure must stay its own
        {"instanceNameOnToolbox": mute, "dockerImageUrl": BUSYBOX, "mcpTransportType": "stdio",
         "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"], "HostConfig": {"LogConfig": {"Type": "none"}}}},
    ]})
    assert r.status_code in (200, 201), r.text
    try:
        def logs():
            got = agent.get("/diagnostics/logs", params={"lines": 50}).json()["logs"]["mcp_containers"]
            return got if got.get(talker) else None
        got = wait_until(logs, 10)
        assert got, "the MCP server's log never showed"
        assert "error" not in got, got["error"]
        assert got[talker] == ["dtmatest-mcp-says-hi"]
        assert isinstance(got[mute], dict) and got[mute]["error"]
    finally:
        agent.delete(f"/mcp/groups/{group}", params={"forceRemove": "true"})
