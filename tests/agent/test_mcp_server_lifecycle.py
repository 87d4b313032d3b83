"""POST /mcp/servers/{name}/start|stop: idempotent lifecycle of one MCP server, read back from Docker."""

from dtma_testing import BUSYBOX


def deploy(agent, group, server):
    body = {"groupId": group, "servers": [{"instanceNameOnToolbox": server, "dockerImageUrl": BUSYBOX,
                                           "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}}]}
    r = agent.post("/mcp/groups", json=body)
    assert r.status_code == 201, r.text


def test_stop_and_start_are_idempotent(agent, docker_api, name):
    group, server = name("grp"), name("srv")
    deploy(agent, group, server)
    try:
        r = agent.post(f"/mcp/servers/{server}/stop?timeout=1")
        assert r.status_code == 200 and r.json()["changed"] is True and r.json()["data"]["state"] == "exited"
        assert docker_api.inspect_container(server)["State"]["Status"] == "exited"
        r = agent.post(f"/mcp/servers/{server}/stop?timeout=1")
        assert r.status_code == 200 and r.json()["changed"] is False
        r = agent.post(f"/mcp/servers/{server}/start")
        assert r.status_code == 200 and r.json()["changed"] is True and r.json()["data"]["state"] == "running"
        r = agent.post(f"/mcp/servers/{server}/start")
        assert r.json()["changed"] is False
    finally:
        agent.delete(f"/mcp/groups/{group}?forceRemove=true")


def test_unknown_server_and_bad_action(agent, name):
    assert agent.post(f"/mcp/servers/{name('nope')}/stop").status_code == 404
    assert agent.post(f"/mcp/servers/{name('nope')}/explode").status_code == 422
