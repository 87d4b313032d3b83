"""agentopia.dtma.dtma_mcp_server in real ansible-playbook runs against a real agent and real containers."""

from __future__ import annotations

import uuid

import pytest

from dtma_testing import BUSYBOX, free_port

MODULE = "agentopia.dtma.dtma_mcp_server"


def server(name: str, state: str | None = None, check: bool = False, **options) -> dict:
    args = {"name": name, **options}
    if state:
        args["state"] = state
    task = {"name": f"{state or 'default'}{' (check)' if check else ''}", MODULE: args}
    if check:
        task["check_mode"] = True
    return task


@pytest.fixture
def deployed(agent, name):
    """A group with one busybox MCP server, deployed straight through the agent; removed afterwards."""
    gid, srv = name("grp"), name("srv")
    body = {"groupId": gid, "servers": [{"instanceNameOnToolbox": srv, "dockerImageUrl": BUSYBOX,
                                         "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}}]}
    r = agent.post("/mcp/groups", json=body)
    assert r.status_code == 201, r.text
    yield srv
    agent.delete(f"/mcp/groups/{gid}", params={"forceRemove": "true"})


def test_stopped_started_restarted_cycle(agent, ansible_run, deployed, docker_api):
    srv = deployed
    tasks = [server(srv, "stopped", check=True, graceful_timeout=1), server(srv, "stopped", stop_timeout=1),
             server(srv, "stopped"), server(srv, "stopped", check=True),
             server(srv, "started", check=True), server(srv, "started"), server(srv), server(srv, "started", check=True),
             server(srv, "restarted", check=True, graceful_timeout=0), server(srv, "restarted", graceful_timeout=0),
             server(srv, "restarted", graceful_timeout=0)]
    r = ansible_run(tasks, agent=agent, verbosity=3)
    assert [t.get("failed") for t in r.results[:10]] == [False] * 10, r

    # stopped: check mode predicts, the real run stops (so check mode did not), then idempotent
    assert r[0]["changed"] is True and r[0]["previous_state"] == "running" and r[0]["state"] == "exited"
    assert r[0]["diff"] == {"before": {"name": srv, "state": "running"}, "after": {"name": srv, "state": "exited"}}
    assert r[1]["changed"] is True and r[1]["state"] == "exited" and r[1]["server"]["state"] == "exited", r[1]
    assert r[1]["previous_state"] == "running"
    assert r[2]["changed"] is False and r[2]["state"] == "exited" and r[2]["server"]["name"] == srv
    assert r[3]["changed"] is False

    # started
    assert r[4]["changed"] is True and r[4]["state"] == "running" and r[4]["previous_state"] == "exited"
    assert r[5]["changed"] is True and r[5]["server"]["state"] == "running", r[5]
    assert r[5]["diff"]["after"]["state"] == "running"
    assert r[6]["changed"] is False and r[6]["state"] == "running"  # state defaults to started
    assert r[7]["changed"] is False

    # restarted: always a change; the real restart after the check-mode one was allowed, so check mode did not
    # restart (the agent allows one restart per 30 s)
    assert r[8]["changed"] is True
    assert r[9]["changed"] is True and r[9]["state"] == "running", r[9]
    assert docker_api.inspect_container(srv)["State"]["Running"] is True

    # an immediate second restart is refused: the agent's limit, named, with when to retry
    assert r[10]["failed"] is True, r[10]
    assert r[10]["status"] == 429
    assert f"MCP server {srv} was not restarted: the agent's restart limit refused it" in r[10]["msg"]
    assert "at most one restart every 30s" in r[10]["msg"] and "retry after" in r[10]["msg"]
    assert isinstance(r[10]["retry_after"], int) and 0 < r[10]["retry_after"] <= 31
    assert agent.token not in r.output


def test_unknown_server_fails_clearly(agent, ansible_run, name):
    missing = name("nope")
    r = ansible_run([server(missing, "started"), server(missing, "restarted", check=True)], agent=agent)
    for result in r.results[:2]:
        assert result["failed"] is True
        assert f"no MCP server named {missing} is managed by the DTMA agent at {agent.url}" in result["msg"], result["msg"]


def test_wrong_token_fails_clearly_and_never_shows_a_token(agent, ansible_run, name):
    wrong = "wrong-token-" + uuid.uuid4().hex
    r = ansible_run([server(name("srv"), "started")], verbosity=3, url=agent.url, token=wrong)
    assert r[0]["failed"] is True and r[0]["status"] == 401
    assert "check the token option" in r[0]["msg"], r[0]["msg"]
    assert wrong not in r.output and agent.token not in r.output


def test_agent_down_fails_clearly(make_agent, ansible_run, name):
    down = make_agent()
    down.stop()
    r = ansible_run([server(name("srv"), "stopped")], verbosity=3, url=down.url, token=down.token)
    assert r[0]["failed"] is True
    assert "could not reach the DTMA agent" in r[0]["msg"] and down.url in r[0]["msg"], r[0]["msg"]
    assert down.token not in r.output

    url = f"http://127.0.0.1:{free_port()}"
    r = ansible_run([server(name("srv"), "restarted")], defaults={"url": url, "token": "x" * 48})
    assert r[0]["failed"] is True and "could not reach the DTMA agent" in r[0]["msg"] and url in r[0]["msg"]
