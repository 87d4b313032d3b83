"""Readiness: a deployed container counts only once it has run through the settle window without a restart (and, with
readyTimeoutSeconds, answered MCP). Against a real agent (DTMA_SETTLE_S=1) and real containers.

The scenario of the issue: a new user deploys an image whose default command exits at once (busybox's `/bin/sh` with
no stdin). The deploy used to say 201 "created" while Docker restarted it forever; it must say 422 and why.
"""

from __future__ import annotations

import pytest

from dtma_testing import BUSYBOX, MCP_IMAGE, wait_until

SLEEP = {"Cmd": ["sleep", "3600"]}
CRASH = {"Cmd": ["sh", "-c", "echo boom; exit 1"]}
LATE_CRASH = {"Cmd": ["sh", "-c", "echo up; sleep 1.5; echo late boom; exit 2"]}


def server(name: str, override: dict | str | None = "sleep", **fields) -> dict:
    """A busybox server on stdio running `override` ("sleep": sleep 3600; None: the image's own command)."""
    spec = {"instanceNameOnToolbox": name, "dockerImageUrl": BUSYBOX, "accountToolInstanceId": f"ati-{name}",
            "mcpTransportType": "stdio"}
    if override is not None:
        spec["baseConfigOverrideJson"] = dict(SLEEP if override == "sleep" else override)
    return {**spec, **fields}


def mcp_demo(name: str, **fields) -> dict:
    """The SDK server on streamable-http, port 8080 published on a random host port (as in test_mcp_health.py)."""
    return {"instanceNameOnToolbox": name, "dockerImageUrl": MCP_IMAGE, "accountToolInstanceId": f"ati-{name}",
            "mcpTransportType": "streamable-http", "mcpEndpointPath": "/mcp", "portBindings": {"8080": ""},
            "environmentVariables": {"MCP_TRANSPORT": "streamable-http", "MCP_PATH": "/mcp"}, **fields}


def group(group_id: str, *servers: dict, **options) -> dict:
    body = {"groupId": group_id, "servers": list(servers)}
    if options:
        body["options"] = options
    return body


def tool(name: str, override: dict | None = None, **fields) -> dict:
    return {"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": name, "accountToolInstanceId": f"ati-{name}",
            "baseConfigOverrideJson": dict(override or SLEEP), **fields}


def outcomes(response) -> dict:
    return {s["name"]: s for s in response.json()["data"]["servers"]}


def holders(api, name: str) -> dict[str, dict]:
    """Every container named `name` or `name`-something (the kept-aside ones included), by name."""
    return {c["Names"][0].lstrip("/"): c for c in api.containers(all=True, filters={"name": f"^/{name}"})}


def put_tool(agent, body: dict):
    return agent.session.put(f"{agent.url}/tools/{body['instanceNameOnToolbox']}", json=body, timeout=120)


def assert_not_ready(result: dict, exit_code: int, log_text: str | None, window: str = "1s settle window") -> None:
    """The failure carries the container's facts: state, exit code, restart count, its last log lines."""
    assert result["outcome"] == "failed" and result["status"] == 422 and result["error"] == "not ready", result
    assert result["exit_code"] == exit_code, f"the exit code of the crash: {result}"
    assert isinstance(result["restart_count"], int) and f"{result['restart_count']} restarts" in result["message"], result
    assert result["state"] in ("exited", "restarting", "running"), result
    assert f"exit code {exit_code}" in result["message"] and window in result["message"], result["message"]
    assert isinstance(result["logs"], list) and len(result["logs"]) <= 20, result
    if log_text is None:
        assert result["logs"] == [] and "last log lines: none" in result["message"], result
    else:
        assert any(log_text in line for line in result["logs"]), result["logs"]
        assert log_text in result["message"], "the message shows the last lines"


# ---------------------------------------------------------------- the new user's first deploy

@pytest.mark.parametrize("override, exit_code, log_text", [
    (None, 0, None),            # the image's default command, /bin/sh, exits at once without stdin: no output
    (CRASH, 1, "boom"),
], ids=["default-sh-no-stdin", "exit-1"])
def test_a_server_that_exits_at_once_fails_the_deploy(agent, docker_api, name, groups, override, exit_code, log_text):
    gid, bad, good = name("grp"), name("bad"), name("good")
    groups.append(gid)
    body = group(gid, server(bad, override), server(good))

    r = agent.post("/mcp/groups", json=body)
    assert r.status_code == 422, f"a server that does not stay up must not be a 201: {r.text}"
    out = r.json()
    assert out["success"] is False and out["error"] == "deployment failed", out
    assert bad in out["message"], out["message"]
    servers = outcomes(r)
    assert_not_ready(servers[bad], exit_code, log_text)
    assert servers[bad].get("container_id") is None, "the failed container was removed: no id to report"
    assert holders(docker_api, bad) == {}, "nothing is left of the server that is not ready"
    assert servers[good]["outcome"] == "created", servers[good]
    info = docker_api.inspect_container(good)
    assert info["Id"] == servers[good]["container_id"] and info["State"]["Status"] == "running"

    # a second deploy tries again and fails again: never "unchanged" for the failing server
    plan = {s["name"]: s for s in agent.post("/mcp/validate", json=body).json()["data"]["plan"]}
    assert (plan[bad]["action"], plan[good]["action"]) == ("create", "unchanged"), plan
    r = agent.post("/mcp/groups", json=body)
    assert r.status_code == 422, r.text
    again = outcomes(r)
    assert again[bad]["outcome"] == "failed" and again[bad]["reason"] == "not deployed", again[bad]
    assert_not_ready(again[bad], exit_code, log_text)
    assert again[good]["outcome"] == "unchanged" and again[good]["container_id"] == info["Id"], again[good]
    assert holders(docker_api, bad) == {}


def test_a_tool_that_exits_at_once_fails_its_deploy(agent, docker_api, name, cleanup):
    n = name("badtool")
    cleanup.append(n)
    for call in (lambda: agent.post("/tools", json=tool(n, CRASH)), lambda: put_tool(agent, tool(n, CRASH))):
        r = call()
        assert r.status_code == 422, r.text
        out = r.json()
        assert out["error"] == "not ready" and out["data"]["outcome"] == "failed", out
        assert_not_ready(out["data"], 1, "boom")
        assert holders(docker_api, n) == {}


# ---------------------------------------------------------------- a failed recreate keeps the old container

def test_a_recreate_that_does_not_become_ready_restores_the_old_server(agent, docker_api, name, groups):
    gid, a = name("grp"), name("srv")
    groups.append(gid)
    r = agent.post("/mcp/groups", json=group(gid, server(a), settleSeconds=0))
    assert r.status_code == 201, r.text
    old = docker_api.inspect_container(a)

    r = agent.post("/mcp/groups", json=group(gid, server(a, CRASH)))
    assert r.status_code == 422, r.text
    result = outcomes(r)[a]
    assert result["reason"] == "configuration changed", result
    assert_not_ready(result, 1, "boom")
    assert result["message"].endswith("; the previous container was restored"), result["message"]
    _assert_restored(docker_api, a, old)

    plan = agent.post("/mcp/validate", json=group(gid, server(a, CRASH))).json()["data"]["plan"]
    assert [(s["action"], s["container_id"]) for s in plan] == [("recreate", old["Id"])], plan


def test_a_tool_recreate_that_does_not_become_ready_restores_the_old_tool(agent, docker_api, name, cleanup):
    n = name("tool")
    cleanup.append(n)
    r = agent.post("/tools", json=tool(n, settleSeconds=0))
    assert r.status_code == 201, r.text
    old = docker_api.inspect_container(n)

    r = put_tool(agent, tool(n, CRASH))
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["error"] == "not ready" and out["data"]["reason"] == "configuration changed", out
    assert_not_ready(out["data"], 1, "boom")
    assert out["message"].endswith("; the previous container was restored"), out["message"]
    _assert_restored(docker_api, n, old)

    plan = agent.post("/tools/validate", json=tool(n, CRASH)).json()["data"]["plan"]
    assert (plan["action"], plan["container_id"], plan["state"]) == ("recreate", old["Id"], "running"), plan


def _assert_restored(api, name: str, old: dict) -> None:
    info = api.inspect_container(name)
    assert info["Id"] == old["Id"], "the old container is back under its name"
    assert info["State"]["Status"] == "running", f"the old container runs again: {info['State']}"
    assert info["Config"]["Labels"]["agentopia.config_hash"] == old["Config"]["Labels"]["agentopia.config_hash"]
    assert list(holders(api, name)) == [name], f"no kept-aside or new container is left: {list(holders(api, name))}"


# ---------------------------------------------------------------- the settle window decides

@pytest.mark.parametrize("kind", ["group", "tool"])
def test_the_settle_window_decides_whether_a_late_crash_counts(agent, docker_api, name, groups, cleanup, kind):
    """The container crashes after about 1.5 s: a 3 s window sees it, a 0 s window does not (and the plan sees the
    crash loop afterwards)."""
    gid, n = name("grp"), name("late")
    groups.append(gid)
    cleanup.append(n)

    def deploy(settle):
        if kind == "group":
            r = agent.post("/mcp/groups", json=group(gid, server(n, LATE_CRASH), settleSeconds=settle))
            return r, outcomes(r)[n]
        body = tool(n, LATE_CRASH, settleSeconds=settle)
        r = agent.post("/tools", json=body)
        return r, (r.json()["data"] if r.status_code != 201 else {"outcome": "created", **r.json()["data"]})

    r, result = deploy(3)
    assert r.status_code == 422, r.text
    assert_not_ready(result, 2, "late boom", window="3s settle window")
    # it ran through the sleep, and failed when it crashed, not at the end of the window (plus create and start)
    assert 1.3 < result["duration_ms"] / 1000 < 4, f"it failed as soon as it crashed: {result['duration_ms']} ms"
    assert holders(docker_api, n) == {}

    r, result = deploy(0)
    assert r.status_code == 201, f"settle 0: running is enough: {r.text}"
    if kind == "group":
        assert r.json()["data"]["settleSeconds"] == 0, r.json()["data"]
    assert result["outcome"] == "created", result
    cid = result["container_id"]
    assert docker_api.inspect_container(cid)["State"]["Status"] == "running"

    # it crashes later; the next plan (with a window again) sees the crash loop, not "unchanged"
    assert wait_until(lambda: docker_api.inspect_container(cid)["RestartCount"] >= 1, 10, 0.1), "it never crashed"
    if kind == "group":
        plan = agent.post("/mcp/validate", json=group(gid, server(n, LATE_CRASH), settleSeconds=3)).json()["data"]["plan"][0]
    else:
        plan = agent.post("/tools/validate", json=tool(n, LATE_CRASH, settleSeconds=3)).json()["data"]["plan"]
    assert plan["action"] == "recreate" and plan["reason"].startswith("crash-looping"), plan


# ---------------------------------------------------------------- the MCP probe as part of readiness

def test_ready_timeout_with_a_real_mcp_server_probes_it(agent, docker_api, name, groups):
    gid, srv, portless, stdio = name("grp"), name("mcp"), name("noport"), name("stdio")
    groups.append(gid)
    body = group(gid, mcp_demo(srv), server(portless, mcpTransportType="streamable-http"), server(stdio),
                 readyTimeoutSeconds=20)
    r = agent.post("/mcp/groups", json=body)
    assert r.status_code == 201, r.text
    servers = outcomes(r)
    assert {n: s["outcome"] for n, s in servers.items()} == {srv: "created", portless: "created", stdio: "created"}
    assert "probe" not in servers[stdio], "a stdio server is not spoken to over the network"
    probe = servers[srv]["probe"]
    assert probe["ok"] is True, probe
    assert probe["server_name"] == "dtma-demo" and sorted(probe["tools"]) == ["add", "echo"], probe
    assert probe["url"].endswith(":8080/mcp"), probe
    # an HTTP server without a known port cannot be probed: it counts on its settle window alone, and says so
    assert servers[portless]["outcome"] == "created", servers[portless]
    assert servers[portless]["probe"]["ok"] is None and "no MCP port" in servers[portless]["probe"]["reason"]


def test_ready_timeout_fails_a_server_that_does_not_answer_mcp(agent, docker_api, name, groups):
    gid, mute = name("grp"), name("mute")
    groups.append(gid)
    r = agent.post("/mcp/groups", json=group(gid, server(mute, mcpTransportType="streamable-http",
                                                         portBindings={"8080": ""}), readyTimeoutSeconds=2))
    assert r.status_code == 422, r.text
    result = outcomes(r)[mute]
    assert result["outcome"] == "failed" and result["error"] == "not ready", result
    assert "MCP probe" in result["message"] and ":8080/mcp" in result["message"], result["message"]
    assert result["state"] == "running" and result["restart_count"] == 0, "it ran; it just did not speak MCP"
    assert 3 <= result["duration_ms"] / 1000 < 10, f"1 s settle then a 2 s probe: {result['duration_ms']} ms"
    assert holders(docker_api, mute) == {}, "the new server that is not ready is removed"


# ---------------------------------------------------------------- invalid readiness options

BAD_SECONDS = ["3", -1, 61, True, [], {}]


@pytest.mark.parametrize("value", BAD_SECONDS, ids=repr)
def test_invalid_settle_seconds_is_422_naming_the_field(agent, docker_api, name, value):
    gid, n = name("grp"), name("srv")
    for path, body, field in (
            ("/mcp/groups", group(gid, server(n), settleSeconds=value), "options.settleSeconds"),
            ("/mcp/validate", group(gid, server(n), settleSeconds=value), "options.settleSeconds"),
            ("/tools", tool(n, settleSeconds=value), "settleSeconds"),
            ("/tools/validate", tool(n, settleSeconds=value), "settleSeconds")):
        r = agent.post(path, json=body)
        assert r.status_code == 422, f"{path} {value!r}: {r.text}"
        fields = [f["field"] for f in r.json()["fields"]]
        assert fields and set(fields) == {field}, f"{path} {value!r}: 422 must name {field}, it named {fields}"
    r = put_tool(agent, tool(n, settleSeconds=value))
    assert r.status_code == 422 and {f["field"] for f in r.json()["fields"]} == {"settleSeconds"}, r.text
    assert holders(docker_api, n) == {}


@pytest.mark.parametrize("value", ["5", 0, -1, 601, False], ids=repr)
def test_invalid_ready_timeout_is_422_naming_the_field(agent, name, value):
    r = agent.post("/mcp/validate", json=group(name("grp"), server(name("srv")), readyTimeoutSeconds=value))
    assert r.status_code == 422, r.text
    assert {f["field"] for f in r.json()["fields"]} == {"options.readyTimeoutSeconds"}, r.text


@pytest.mark.parametrize("value", [0, 0.5, 60])
def test_settle_seconds_bounds_are_accepted(agent, name, value):
    body = group(name("grp"), server(name("srv")), settleSeconds=value, readyTimeoutSeconds=600)
    r = agent.post("/mcp/validate", json=body)
    assert r.status_code == 200, r.text
    r = agent.post("/tools/validate", json=tool(name("t"), settleSeconds=value))
    assert r.status_code == 200, r.text
