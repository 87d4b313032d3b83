"""agentopia.dtma.dtma_mcp_group in real ansible-playbook runs against a real agent, real Docker and a real MCP
server (local/mcp-demo). Every group and server name comes from the `name` fixture (prefix dtmatest-)."""

from __future__ import annotations

import time
import uuid

import docker.errors

from dtma_testing import BUSYBOX, MCP_IMAGE, free_port, wait_until

MODULE = "agentopia.dtma.dtma_mcp_group"
SLEEP = {"Cmd": ["sleep", "3600"]}


def busybox(server: str, **fields) -> dict:
    return {"name": server, "image": BUSYBOX, "account_tool_instance_id": f"ati-{server}", "config_override": dict(SLEEP), **fields}


def group(gid: str, servers: list | None = None, **options) -> dict:
    args = {"name": gid, **options}
    if servers is not None:
        args["servers"] = servers
    return {"name": f"group {gid}", MODULE: args}


def checked(task: dict) -> dict:
    return {**task, "check_mode": True}


def container(docker_api, server: str) -> dict | None:
    try:
        return docker_api.inspect_container(server)
    except docker.errors.NotFound:
        return None


def by_name(entries: list) -> dict:
    return {e["name"]: e for e in entries}


def test_check_apply_rerun_rerun_in_check_mode(agent, ansible_run, name, groups, docker_api):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    task = group(gid, [busybox(a), busybox(b)])
    r = ansible_run([checked(task), task, task, checked(task)], agent=agent)
    assert r.rc == 0, r

    # 1. check mode: the plan, nothing deployed (step 2 reports "created", not "unchanged")
    assert r[0]["failed"] is False and r[0]["changed"] is True, r[0]
    assert {s["name"]: s["action"] for s in r[0]["plan"]} == {a: "create", b: "create"}
    assert r[0]["servers"] == r[0]["plan"]
    assert r[0]["diff"]["before"] == {"servers": []}
    assert [s["name"] for s in r[0]["diff"]["after"]["servers"]] == sorted([a, b])
    assert all(s["state"] == "running" and s["image"] == BUSYBOX for s in r[0]["diff"]["after"]["servers"])

    # 2. apply
    assert r[1]["failed"] is False and r[1]["changed"] is True, r[1]
    assert r[1]["group"] == gid
    assert {s["name"]: s["outcome"] for s in r[1]["servers"]} == {a: "created", b: "created"}
    assert {s["name"]: s["action"] for s in r[1]["plan"]} == {a: "create", b: "create"}
    for server in (a, b):
        details = container(docker_api, server)
        assert details["State"]["Running"] is True
        assert details["Config"]["Labels"]["agentopia.group_id"] == gid
        assert details["Config"]["Labels"]["agentopia.account_tool_instance_id"] == f"ati-{server}"
        assert by_name(r[1]["servers"])[server]["container_id"] == details["Id"]

    # 3. re-run: nothing to do, and it says so with useful values
    assert r[2]["failed"] is False and r[2]["changed"] is False, r[2]
    assert {s["name"]: s["outcome"] for s in r[2]["servers"]} == {a: "unchanged", b: "unchanged"}
    assert {s["name"]: s["container_id"] for s in r[2]["servers"]} == {s["name"]: s["container_id"] for s in r[1]["servers"]}
    assert r[2]["diff"]["before"] == r[2]["diff"]["after"]
    assert all(s["state"] == "running" and len(s["config"]) == 16 for s in r[2]["diff"]["before"]["servers"])

    # 4. re-run in check mode: still nothing to do
    assert r[3]["failed"] is False and r[3]["changed"] is False, r[3]
    assert {s["action"] for s in r[3]["plan"]} == {"unchanged"}


def test_changed_env_recreates_only_that_server_and_stays_secret(agent, ansible_run, name, groups, docker_api):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    secret_old, secret_new = f"old-secret-{uuid.uuid4().hex}", f"new-secret-{uuid.uuid4().hex}"
    first = group(gid, [busybox(a, env={"API_KEY": secret_old}), busybox(b)])
    r = ansible_run([first], agent=agent)
    assert r[0]["changed"] is True and r[0]["failed"] is False, r
    ids = {s["name"]: s["container_id"] for s in r[0]["servers"]}

    second = group(gid, [busybox(a, env={"API_KEY": secret_new}), busybox(b)])
    r = ansible_run([checked(second), second, second], verbosity=3, agent=agent)
    assert r.rc == 0, r
    assert {s["name"]: s["action"] for s in r[0]["plan"]} == {a: "recreate", b: "unchanged"}
    assert r[0]["changed"] is True
    after = by_name(r[0]["diff"]["after"]["servers"])
    assert after[a]["config"] == "new (configuration changed)" and len(after[b]["config"]) == 16
    # check mode left it alone: the real run still found the original container and recreated it
    assert by_name(r[0]["plan"])[a]["container_id"] == ids[a] == by_name(r[1]["plan"])[a]["container_id"]

    assert r[1]["changed"] is True, r[1]
    outcomes = by_name(r[1]["servers"])
    assert outcomes[a]["outcome"] == "recreated" and outcomes[b]["outcome"] == "unchanged"
    assert outcomes[a]["container_id"] != ids[a] and outcomes[b]["container_id"] == ids[b]
    assert f"API_KEY={secret_new}" in container(docker_api, a)["Config"]["Env"]
    assert r[2]["changed"] is False, r[2]

    # env values are no_log: not in the -vvv output, not in the registered results; the token neither
    for text in (secret_old, secret_new, agent.token):
        assert text not in r.output
        assert text not in str(r.results)
    assert "API_KEY" not in str(r[1].get("diff"))


def test_wait_reaches_healthy_with_the_mcp_probe(agent, ansible_run, name, groups):
    gid, server = name("grp"), name("mcp")
    groups.append(gid)
    spec = {"name": server, "image": MCP_IMAGE, "transport": "streamable-http", "endpoint_path": "/mcp",
            "ports": {"8080": ""}, "env": {"MCP_SERVER_NAME": "dtma-demo"}}
    started = time.monotonic()
    r = ansible_run([group(gid, [spec], wait=True, wait_timeout=60), group(gid, [spec], wait=True)], agent=agent)
    assert r.rc == 0, r
    assert r[0]["changed"] is True and r[0]["failed"] is False, r[0]
    assert r[0]["collective_status"] == "healthy"
    (health,) = r[0]["health"]
    assert health["name"] == health["server"] == server and health["state"] == "running"
    probe = health["health"]["probe"]
    assert probe["ok"] is True and sorted(probe["tools"]) == ["add", "echo"] and probe["tool_count"] == 2
    assert probe["protocol_version"] and probe["latency_ms"] > 0
    # re-run: unchanged, and still reports the health it waited for
    assert r[1]["changed"] is False and r[1]["collective_status"] == "healthy", r[1]
    assert r[1]["health"][0]["health"]["probe"]["ok"] is True
    assert time.monotonic() - started < 90


def test_wait_with_a_wrong_endpoint_path_fails_after_wait_timeout(agent, ansible_run, name, groups, docker_api):
    gid, server = name("grp"), name("mcp")
    groups.append(gid)
    spec = {"name": server, "image": MCP_IMAGE, "endpoint_path": "/wrong", "ports": {"8080": ""}}
    started = time.monotonic()
    r = ansible_run([group(gid, [spec], wait=True, wait_timeout=5)], agent=agent)
    elapsed = time.monotonic() - started
    assert r[0]["failed"] is True, r[0]
    # with wait, answering MCP is part of being deployed: the agent removed the server that did not, so nothing changed
    assert r[0]["changed"] is False, r[0]
    assert f"group {gid}: not every server could be deployed: {server}: the MCP probe of http://" in r[0]["msg"], r[0]["msg"]
    assert "/wrong failed: HTTP 404" in r[0]["msg"], r[0]["msg"]
    failed = r[0]["servers"][0]
    assert failed["outcome"] == "failed" and failed["error"] == "not ready" and failed["state"] == "running", failed
    assert not docker_api.containers(all=True, filters={"name": server}), "the server that was not ready was left behind"
    assert elapsed < 40


def test_absent_in_check_mode_then_twice(agent, ansible_run, name, docker_api):
    gid, a, b = name("grp"), name("a"), name("b")
    r = ansible_run([group(gid, [busybox(a), busybox(b)])], agent=agent)
    assert r[0]["changed"] is True, r
    absent = group(gid, state="absent", stop_timeout=1)
    r = ansible_run([checked(absent), absent, absent, checked(absent)], agent=agent)
    assert r.rc == 0, r
    assert r[0]["changed"] is True and r[0]["failed"] is False, r[0]
    assert {s["name"] for s in r[0]["servers"]} == {a, b}
    assert [s["name"] for s in r[0]["diff"]["before"]["servers"]] == sorted([a, b]) and r[0]["diff"]["after"] == {"servers": []}
    # step 2 still found both servers, so check mode removed nothing
    assert r[1]["changed"] is True and {s["name"]: s["outcome"] for s in r[1]["servers"]} == {a: "removed", b: "removed"}, r[1]
    assert container(docker_api, a) is None and container(docker_api, b) is None
    assert r[2]["changed"] is False and r[2]["failed"] is False and r[2]["servers"] == [], r[2]
    assert r[3]["changed"] is False and r[3]["failed"] is False


def test_absent_check_mode_leaves_containers_running(agent, ansible_run, name, groups, docker_api):
    gid, a = name("grp"), name("a")
    groups.append(gid)
    assert ansible_run([group(gid, [busybox(a)])], agent=agent)[0]["changed"] is True
    r = ansible_run([group(gid, state="absent")], agent=agent, check=True)
    assert r[0]["changed"] is True and r[0]["failed"] is False, r[0]
    assert container(docker_api, a)["State"]["Running"] is True


def test_restarted_restarts_every_server_within_the_agents_limit(agent, ansible_run, name, groups, docker_api):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    assert ansible_run([group(gid, [busybox(a), busybox(b)])], agent=agent)[0]["changed"] is True
    started_at = {s: container(docker_api, s)["State"]["StartedAt"] for s in (a, b)}
    restarted = group(gid, state="restarted", graceful_timeout=0)  # the alias of stop_timeout
    r = ansible_run([checked(restarted), restarted, restarted], agent=agent)
    assert r[0]["changed"] is True and r[0]["failed"] is False, r[0]
    assert {s["action"] for s in r[0]["servers"]} == {"restart"}
    assert r[1]["changed"] is True and r[1]["failed"] is False, r[1]
    assert {s["name"]: s["outcome"] for s in r[1]["servers"]} == {a: "restarted", b: "restarted"}
    for server in (a, b):
        assert container(docker_api, server)["State"]["StartedAt"] != started_at[server]
    # an immediate second restart is refused by the agent: a clear failure naming the server and when to retry
    assert r[2]["failed"] is True, r[2]
    first = sorted([a, b])[0]
    assert f"MCP server {first} of group {gid} was not restarted" in r[2]["msg"]
    assert "retry after" in r[2]["msg"] and isinstance(r[2]["retry_after"], int) and r[2]["retry_after"] > 0
    assert r[2]["status"] == 429


def test_restarted_on_a_missing_group_fails(agent, ansible_run, name):
    r = ansible_run([group(name("grp"), state="restarted")], agent=agent)
    assert r[0]["failed"] is True and "nothing to restart" in r[0]["msg"]


def test_bad_transport_is_refused_by_ansible(agent, ansible_run, name, docker_api):
    server = name("a")
    r = ansible_run([group(name("grp"), [busybox(server, transport="grpc")])], agent=agent)
    assert r[0]["failed"] is True
    assert "value of transport must be one of: stdio, sse, streamable-http, websocket, got: grpc" in r[0]["msg"], r[0]["msg"]
    assert container(docker_api, server) is None


def test_a_name_with_a_slash_surfaces_the_agents_422_naming_the_field(agent, ansible_run, name):
    r = ansible_run([group(name("grp"), [busybox("bad/name")])], agent=agent)
    assert r[0]["failed"] is True
    assert r[0]["status"] == 422
    assert "refused the spec" in r[0]["msg"] and "servers[0].name: String should match pattern" in r[0]["msg"], r[0]["msg"]
    assert r[0]["fields"][0]["field"] == "servers.0.instanceNameOnToolbox"
    assert r[0]["fields"][0]["option"] == "servers[0].name"


def test_unsafe_config_override_fails_with_the_agents_400(agent, ansible_run, name, docker_api):
    server = name("a")
    spec = busybox(server, config_override={"Cmd": ["sleep", "3600"], "HostConfig": {"Privileged": True}})
    r = ansible_run([group(name("grp"), [spec])], agent=agent)
    assert r[0]["failed"] is True and r[0]["status"] == 400, r[0]
    assert f"servers[{server}].config_override.HostConfig.Privileged is not allowed" in r[0]["msg"], r[0]["msg"]
    assert container(docker_api, server) is None


def test_wrong_token_fails_clearly_and_never_shows_a_token(agent, ansible_run, name):
    wrong = "wrong-token-" + uuid.uuid4().hex
    r = ansible_run([group(name("grp"), [busybox(name("a"))])], verbosity=3, url=agent.url, token=wrong)
    assert r[0]["failed"] is True and r[0]["status"] == 401
    assert "token" in r[0]["msg"], r[0]["msg"]
    assert wrong not in r.output and agent.token not in r.output


def test_agent_down_fails_clearly(make_agent, ansible_run, name):
    down = make_agent()
    down.stop()
    r = ansible_run([group(name("grp"), [busybox(name("a"))]), group(name("grp"), state="absent")], verbosity=3,
                    url=down.url, token=down.token)
    for result in (r[0], r[1]):
        assert result["failed"] is True
        assert "could not reach the DTMA agent" in result["msg"] and down.url in result["msg"], result["msg"]
    assert down.token not in r.output


def test_nobody_listening_fails_clearly(ansible_run, name):
    url = f"http://127.0.0.1:{free_port()}"
    r = ansible_run([group(name("grp"), [busybox(name("a"))])], defaults={"url": url, "token": "x" * 48})
    assert r[0]["failed"] is True and "could not reach the DTMA agent" in r[0]["msg"] and url in r[0]["msg"]


def test_crash_looping_server_is_a_change_and_the_apply_names_exit_code_and_logs(
        agent, ansible_run, name, groups, docker_api):
    """Issue 11's new-user case at the module: a server that crash-loops is never "ok". Check mode reports the change
    it would make; the apply fails naming the server, its exit code and its last log lines; the good server of the
    same group is deployed and a converged re-run in check mode reports no change for it."""
    gid, good, bad = name("grp"), name("good"), name("bad")
    groups.append(gid)
    crash = busybox(bad, config_override={"Cmd": ["sh", "-c", "echo boom-$HOSTNAME; echo second line >&2; exit 3"]})
    task = group(gid, [busybox(good), crash], settle=1)
    r = ansible_run([checked(task), task, checked(task)], agent=agent)
    assert r[0]["changed"] is True and by_name(r[0]["plan"])[bad]["action"] == "create", r[0]
    applied = r[1]
    assert applied["failed"] is True, applied
    assert f"{bad}: the container did not stay up for the 1s settle window" in applied["msg"], applied["msg"]
    assert "exit code 3" in applied["msg"] and "boom-" in applied["msg"] and "second line" in applied["msg"], applied["msg"]
    outcome = by_name(applied["servers"])
    assert outcome[good]["outcome"] == "created", outcome
    assert outcome[bad]["outcome"] == "failed" and outcome[bad]["exit_code"] == 3, outcome[bad]
    assert any(line.startswith("boom-") for line in outcome[bad]["logs"]), outcome[bad]
    assert applied["changed"] is True  # the good server was created
    assert container(docker_api, bad) is None, "the server that was not ready was left behind"
    # check mode right after: the failing server is still a change, the good one is unchanged
    assert r[2]["changed"] is True, r[2]
    assert {s["name"]: s["action"] for s in r[2]["plan"]} == {good: "unchanged", bad: "create"}, r[2]["plan"]

    # the fixed spec converges, and then check mode reports nothing to do
    fixed = group(gid, [busybox(good), busybox(bad)], settle=1)
    r = ansible_run([fixed, checked(fixed)], agent=agent)
    assert r[0]["failed"] is False and by_name(r[0]["servers"])[bad]["outcome"] == "created", r[0]
    assert r[1]["changed"] is False, r[1]

    # a server Docker restarted within the last 10 s (its restart back-off has not settled) is not "unchanged"
    # its process dies as in a crash (a `docker kill` counts as a manual stop, which Docker does not restart)
    docker_api.exec_start(docker_api.exec_create(bad, ["sh", "-c", "kill -KILL $(pidof sleep)"]))
    assert wait_until(lambda: docker_api.inspect_container(bad)["RestartCount"] == 1, 10), "Docker did not restart it"
    r = ansible_run([checked(fixed)], agent=agent)
    plan = by_name(r[0]["plan"])[bad]
    assert r[0]["changed"] is True and plan["action"] == "recreate" and "crash-looping" in plan["reason"], plan
