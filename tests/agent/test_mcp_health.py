"""MCP server health, status, restarts and logs against a real agent, real containers and a real MCP server
(`local/mcp-demo`, built from the official `mcp` SDK). Names come from the `name` fixture (prefix `dtmatest-`)."""

from __future__ import annotations

import time

import pytest
import requests

from dtma_testing import BUSYBOX, MCP_IMAGE, wait_until

SLEEP = {"Cmd": ["sleep", "3600"]}


def busybox(name: str, **fields) -> dict:
    spec = {"instanceNameOnToolbox": name, "dockerImageUrl": BUSYBOX, "accountToolInstanceId": f"ati-{name}",
            "baseConfigOverrideJson": dict(SLEEP)}
    spec.update(fields)
    return spec


def mcp_server(name: str, transport: str = "streamable-http", path: str = "/mcp", **fields) -> dict:
    """The SDK server, its transport and path set by environment, its port 8080 published on a random host port."""
    spec = {"instanceNameOnToolbox": name, "dockerImageUrl": MCP_IMAGE, "accountToolInstanceId": f"ati-{name}",
            "mcpTransportType": transport, "mcpEndpointPath": path, "portBindings": {"8080": ""},
            "environmentVariables": {"MCP_TRANSPORT": transport, "MCP_PATH": path}}
    spec.update(fields)
    return spec


def payload(group_id: str, *servers: dict) -> dict:
    return {"groupId": group_id, "servers": list(servers)}


def deploy(agent, body: dict) -> dict:
    r = agent.post("/mcp/groups", json=body)
    assert r.status_code == 201, r.text
    return {s["name"]: s for s in r.json()["data"]["servers"]}


def health(agent, group_id: str, retry_for: float = 5) -> dict:
    r = agent.get(f"/mcp/health/{group_id}", params={"retryFor": retry_for})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["collectiveStatus"] == body["data"]["collectiveStatus"]
    return body


def by_server(body: dict) -> dict:
    return {s["server"]: s for s in body["data"]["servers"]}


# ---------------------------------------------------------------- the MCP probe

def test_probe_speaks_mcp_over_streamable_http_and_sse(agent, name, groups):
    gid, http, sse = name("grp"), name("http"), name("sse")
    groups.append(gid)
    deploy(agent, payload(gid, mcp_server(http), mcp_server(sse, transport="sse", path="/sse")))
    body = health(agent, gid)
    assert body["collectiveStatus"] == "healthy", body
    servers = by_server(body)
    assert set(servers) == {http, sse}
    for server in (http, sse):
        h = servers[server]["health"]
        assert h["status"] == "healthy" and h["container"] == "running", h
        p = h["probe"]
        assert p["ok"] is True, p
        assert p["server_name"] == "dtma-demo" and p["server_version"] == "1.0.0"
        assert p["tool_count"] == 2 and sorted(p["tools"]) == ["add", "echo"]
        assert p["latency_ms"] > 0
        assert p["protocol_version"]
    assert servers[http]["health"]["probe"]["url"].endswith(":8080/mcp")
    assert servers[sse]["health"]["probe"]["url"].endswith(":8080/sse")


def test_wrong_endpoint_path_fails_the_probe(agent, name, groups):
    g2, good, wrong = name("grp"), name("good"), name("wrong")
    g1, alone = name("grp"), name("alone")
    groups.extend([g2, g1])
    deploy(agent, payload(g2, mcp_server(good), mcp_server(wrong, mcpEndpointPath="/nope")))
    deploy(agent, payload(g1, mcp_server(alone, mcpEndpointPath="/nope")))

    body = health(agent, g2)
    assert body["collectiveStatus"] == "degraded", body
    servers = by_server(body)
    assert servers[good]["health"]["status"] == "healthy"
    bad = servers[wrong]["health"]
    assert bad["status"] == "unhealthy" and bad["container"] == "running"
    assert bad["probe"]["ok"] is False and bad["probe"]["error"], bad
    assert "404" in bad["probe"]["error"]
    assert "probe" in bad["reason"]

    body = health(agent, g1)
    assert body["collectiveStatus"] == "failed", body
    assert by_server(body)[alone]["health"]["probe"]["ok"] is False


def test_stopped_server_is_unhealthy_and_the_group_degraded(agent, docker_api, name, groups):
    gid, up, down = name("grp"), name("up"), name("down")
    groups.append(gid)
    deployed = deploy(agent, payload(gid, busybox(up), busybox(down)))
    docker_api.stop(deployed[down]["container_id"], timeout=2)
    body = health(agent, gid, retry_for=0)
    assert body["collectiveStatus"] == "degraded", body
    servers = by_server(body)
    assert servers[up]["health"]["status"] == "healthy"
    h = servers[down]["health"]
    assert h["status"] == "unhealthy" and h["container"] == "exited"
    assert "exited" in h["reason"]
    assert "probe" not in h  # a stopped container is not probed


def test_all_servers_stopped_is_failed(agent, docker_api, name, groups):
    gid, a = name("grp"), name("a")
    groups.append(gid)
    deployed = deploy(agent, payload(gid, busybox(a)))
    docker_api.stop(deployed[a]["container_id"], timeout=2)
    assert health(agent, gid, retry_for=0)["collectiveStatus"] == "failed"


def test_stdio_server_is_not_probed_over_the_network(agent, docker_api, name, groups):
    gid, stdio = name("grp"), name("stdio")
    groups.append(gid)
    # a stdio server reads its stdin: keep it open, as a caller attaching to it later would need
    spec = mcp_server(stdio, transport="stdio", path="/mcp", portBindings={}, baseConfigOverrideJson={"OpenStdin": True})
    deployed = deploy(agent, payload(gid, spec))
    time.sleep(1.5)  # past the server's start: it must still be running, not exit on EOF
    info = docker_api.inspect_container(deployed[stdio]["container_id"])
    assert info["State"]["Running"] is True and info["RestartCount"] == 0
    body = health(agent, gid, retry_for=0)
    assert body["collectiveStatus"] == "healthy"
    h = by_server(body)[stdio]["health"]
    assert h["status"] == "healthy"
    assert h["probe"]["ok"] is None
    assert "stdio" in h["probe"]["reason"] and "not probed" in h["probe"]["reason"], h


def test_health_of_an_unknown_group_is_404(agent, name):
    r = agent.get(f"/mcp/health/{name('nothing')}")
    assert r.status_code == 404, r.text
    assert r.json()["success"] is False


@pytest.mark.parametrize("value", ["-1", "31", "soon"])
def test_health_with_bad_retry_for_is_422(agent, name, value):
    r = agent.get(f"/mcp/health/{name('nothing')}", params={"retryFor": value})
    assert r.status_code == 422, r.text
    assert "retryFor" in r.json()["message"]


# ---------------------------------------------------------------- status

def test_mcp_status_lists_servers_and_not_tools(agent, docker_api, name, groups, cleanup):
    gid, server, quiet, tool = name("grp"), name("mcp"), name("quiet"), name("tool")
    groups.append(gid)
    cleanup.append(tool)
    deploy(agent, payload(gid, mcp_server(server), busybox(quiet)))
    r = agent.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": tool,
                                   "accountToolInstanceId": "ati-tool", "baseConfigOverrideJson": SLEEP})
    assert r.status_code == 201, r.text
    assert health(agent, gid)["collectiveStatus"] == "healthy"  # the MCP server is up before status probes it

    r = agent.get("/mcp/status")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["timestamp"] and isinstance(body["mcp_servers"], list)
    names = {s["server"] for s in body["mcp_servers"]}
    assert tool not in names
    mine = {s["server"]: s for s in body["mcp_servers"] if s["group_id"] == gid}
    assert set(mine) == {server, quiet}
    for entry in mine.values():
        for key in ("group_id", "server", "state", "ports", "health"):
            assert key in entry, (key, entry)
        assert entry["state"] == "running" and entry["health"]["status"] == "healthy"
        assert "probe" not in entry["health"]  # without ?probe=true nothing is probed
    published = mine[server]["ports"]
    assert published and published[0]["container_port"] == 8080 and published[0]["host_port"]

    r = agent.get("/mcp/status", params={"probe": "true"})
    assert r.status_code == 200, r.text
    probed = {s["server"]: s for s in r.json()["mcp_servers"] if s["group_id"] == gid}
    assert probed[server]["health"]["probe"]["ok"] is True
    assert probed[server]["health"]["probe"]["server_name"] == "dtma-demo"
    assert probed[quiet]["health"]["probe"]["ok"] is None  # no MCP port known: not probed, said so
    assert probed[quiet]["health"]["probe"]["reason"]
    assert tool not in {s["server"] for s in r.json()["mcp_servers"]}
    assert agent.delete(f"/tools/{tool}", params={"timeout": 1}).status_code == 200


# ---------------------------------------------------------------- restart (rate limited)

def started_at(docker_api, container: str) -> str:
    return docker_api.inspect_container(container)["State"]["StartedAt"]


def test_restart_then_immediate_second_is_429_with_default_limits(agent, docker_api, name, groups):
    gid, server = name("grp"), name("srv")
    groups.append(gid)
    deploy(agent, payload(gid, busybox(server)))
    before = started_at(docker_api, server)
    r = agent.post(f"/mcp/servers/{server}/restart")
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True and r.json()["data"]["state"] == "running"
    assert started_at(docker_api, server) != before
    assert docker_api.inspect_container(server)["State"]["Running"] is True

    again = agent.post(f"/mcp/servers/{server}/restart")
    assert again.status_code == 429, again.text
    assert again.json()["success"] is False
    assert "30" in again.json()["message"]  # the default 30 s cooldown
    assert 1 <= int(again.headers["Retry-After"]) <= 31


def test_restart_cooldown_and_limit(make_agent, docker_api, name, groups):
    gid, server = name("grp"), name("srv")
    groups.append(gid)
    # the cooldown counts from the start of a restart: 3 s leaves room for a slow restart on a loaded machine
    a = make_agent(env={"DTMA_MCP_RESTART_COOLDOWN_S": "3", "DTMA_MCP_RESTART_LIMIT": "2",
                        "DTMA_MCP_RESTART_WINDOW_S": "60"})
    deploy(a, payload(gid, busybox(server)))
    first_start = started_at(docker_api, server)

    assert a.post(f"/mcp/servers/{server}/restart").status_code == 200
    second_start = started_at(docker_api, server)
    assert second_start != first_start

    r = a.post(f"/mcp/servers/{server}/restart")
    assert r.status_code == 429, r.text
    assert "cooldown" in r.json()["error"] or "cooldown" in r.json()["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= 4
    assert started_at(docker_api, server) == second_start  # a refused restart does nothing

    time.sleep(3.1)
    r = a.post(f"/mcp/servers/{server}/restart")
    assert r.status_code == 200, r.text
    third_start = started_at(docker_api, server)
    assert third_start != second_start

    time.sleep(3.1)  # past the cooldown: now the limit (2 per 60 s) refuses
    r = a.post(f"/mcp/servers/{server}/restart")
    assert r.status_code == 429, r.text
    assert "limit" in r.json()["error"] and "limit 2" in r.json()["message"], r.json()
    assert 1 <= int(r.headers["Retry-After"]) <= 61
    assert started_at(docker_api, server) == third_start


def test_restart_unknown_server_is_404(agent, name):
    r = agent.post(f"/mcp/servers/{name('nobody')}/restart")
    assert r.status_code == 404, r.text


def test_restart_and_logs_match_the_exact_name(agent, docker_api, name, groups):
    """Docker's name filter is a regular expression; `x.y` must not find (and restart) the server `xZy`."""
    gid, real = name("grp"), name("dotZname")
    ghost = real.replace("dotZname", "dot.name")
    groups.append(gid)
    deploy(agent, payload(gid, busybox(real)))
    before = started_at(docker_api, real)
    assert agent.post(f"/mcp/servers/{ghost}/restart").status_code == 404
    assert agent.get(f"/mcp/servers/{ghost}/logs").status_code == 404
    assert started_at(docker_api, real) == before
    # the real one is still found by its own name
    assert agent.get(f"/mcp/servers/{real}/logs").status_code == 200


def test_restart_does_not_touch_a_managed_tool(agent, name, cleanup):
    tool = name("tool")
    cleanup.append(tool)
    r = agent.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": tool,
                                   "accountToolInstanceId": "ati-tool", "baseConfigOverrideJson": SLEEP})
    assert r.status_code == 201, r.text
    assert agent.post(f"/mcp/servers/{tool}/restart").status_code == 404
    assert agent.get(f"/mcp/servers/{tool}/logs").status_code == 404


# ---------------------------------------------------------------- logs

def test_server_logs(agent, name, groups):
    gid, server = name("grp"), name("srv")
    groups.append(gid)
    deploy(agent, payload(gid, mcp_server(server)))

    def startup_logged():
        r = agent.get(f"/mcp/servers/{server}/logs", params={"tail": 100})
        return r.status_code == 200 and any("Uvicorn running" in line for line in r.json()["data"]["lines"])

    assert wait_until(startup_logged, 10), agent.get(f"/mcp/servers/{server}/logs").text
    r = agent.get(f"/mcp/servers/{server}/logs", params={"tail": 5})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["name"] == server and data["group_id"] == gid
    assert 1 <= len(data["lines"]) <= 5 and data["count"] == len(data["lines"])
    assert any("uvicorn" in line.lower() or "startup" in line.lower() for line in data["lines"]), data["lines"]

    one = agent.get(f"/mcp/servers/{server}/logs", params={"tail": 1}).json()["data"]["lines"]
    assert len(one) == 1 and one[0] == data["lines"][-1]

    for bad in ("0", "-3", "many"):
        r = agent.get(f"/mcp/servers/{server}/logs", params={"tail": bad})
        assert r.status_code == 422, r.text
        assert "tail" in r.json()["message"]


def test_logs_of_an_unknown_server_is_404(agent, name):
    r = agent.get(f"/mcp/servers/{name('nobody')}/logs", params={"tail": 5})
    assert r.status_code == 404, r.text
    assert r.json()["success"] is False


def test_mcp_health_routes_need_the_token(agent, name):
    for path in (f"/mcp/health/{name('g')}", "/mcp/status", f"/mcp/servers/{name('s')}/logs"):
        assert requests.get(agent.url + path, timeout=10).status_code == 401, path
    assert requests.post(f"{agent.url}/mcp/servers/{name('s')}/restart", timeout=10).status_code == 401


def test_probe_reports_restart_counts_of_a_crash_looping_server(agent, name, groups):
    """A server that passes its settle window and then exits, again and again (Docker restarts it): the probe's
    inspect reports its restart count, which a fleet report shows; a steady server reports 0."""
    gid, looping, steady = name("grp"), name("loop"), name("steady")
    groups.append(gid)
    crash = {"Cmd": ["sh", "-c", "sleep 2; exit 3"], "HostConfig": {"RestartPolicy": {"Name": "always"}}}
    deploy(agent, {**payload(gid, busybox(looping, baseConfigOverrideJson=crash), busybox(steady)),
                   "options": {"settleSeconds": 1}})

    def restarts():
        servers = {s["server"]: s for s in agent.get("/mcp/status", params={"probe": "true"}).json()["mcp_servers"]
                   if s["group_id"] == gid}
        return servers if servers[looping]["health"].get("restart_count", 0) >= 1 else None

    servers = wait_until(restarts, timeout=20, interval=0.5)
    assert servers, agent.get("/mcp/status", params={"probe": "true"}).text
    assert servers[steady]["health"]["restart_count"] == 0 and servers[steady]["health"]["started_at"]
    # without a probe nothing is inspected, so nothing is said about restarts
    plain = [s for s in agent.get("/mcp/status").json()["mcp_servers"] if s["group_id"] == gid]
    assert plain and all("restart_count" not in s["health"] for s in plain)
