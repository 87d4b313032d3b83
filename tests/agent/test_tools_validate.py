"""POST /tools/validate: the plan of a tool deploy (create, unchanged, recreate, conflict) against a real agent
and a real Docker engine, changing nothing; and config_hash in the tool data."""

from __future__ import annotations

import requests
from dtma_testing import BUSYBOX

SLEEP = {"Cmd": ["sleep", "3600"]}


def body(name: str, override=None, image: str = BUSYBOX, account: str = "acct-v") -> dict:
    return {"dockerImageUrl": image, "instanceNameOnToolbox": name, "accountToolInstanceId": account,
            "baseConfigOverrideJson": SLEEP if override is None else override}


def named(docker_api, name: str) -> list[dict]:
    return docker_api.containers(all=True, filters={"name": f"^/{name}$"})


def plan_of(agent, payload: dict) -> dict:
    r = agent.post("/tools/validate", json=payload)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] is True and out["valid"] is True and out["timestamp"]
    return out["data"]["plan"]


def test_validate_plans_create_and_creates_nothing(agent, docker_api, cleanup, name):
    n = name("val-create")
    cleanup.append(n)
    plan = plan_of(agent, body(n))
    assert plan["name"] == n
    assert plan["action"] == "create" and plan["reason"] == "not deployed"
    assert plan["container_id"] is None and plan["state"] is None
    assert plan["config_hash"]
    assert named(docker_api, n) == [], "validate created a container"


def test_validate_unchanged_then_recreate_after_a_changed_override(agent, docker_api, cleanup, name):
    n = name("val-same")
    cleanup.append(n)
    r = agent.post("/tools", json=body(n))
    assert r.status_code == 201, r.text
    deployed = r.json()["data"]
    assert deployed["config_hash"], "tool data carries the config hash"

    plan = plan_of(agent, body(n))
    assert plan["action"] == "unchanged", plan
    assert plan["container_id"] == deployed["container_id"] and plan["state"] == "running"
    assert plan["config_hash"] == deployed["config_hash"] == plan["current_config_hash"]

    changed = body(n, {"Cmd": ["sleep", "3601"]})
    plan = plan_of(agent, changed)
    assert plan["action"] == "recreate" and plan["reason"] == "configuration changed", plan
    assert plan["config_hash"] != deployed["config_hash"]
    assert plan["current_config_hash"] == deployed["config_hash"]

    # another account id is a different label, so a different config as well
    assert plan_of(agent, body(n, account="acct-other"))["action"] == "recreate"

    # nothing was touched: same container, still running, same hash
    listed = named(docker_api, n)
    assert [c["Id"] for c in listed] == [deployed["container_id"]]
    assert listed[0]["State"] == "running"
    assert listed[0]["Labels"]["agentopia.config_hash"] == deployed["config_hash"]

    # a stopped tool with the same config: PUT /tools/{name} would start it, and the plan says so
    assert agent.post(f"/tools/{n}/stop", params={"timeout": 0}).status_code == 200
    plan = plan_of(agent, body(n))
    assert plan["action"] == "start" and plan["state"] == "exited", plan
    assert plan["reason"] == "container is exited (exit code 143)", plan


def test_validate_sees_an_image_change(agent, docker_api, cleanup, name):
    """The same reference now names another image (a rebuilt tag): recreate, "image changed"."""
    n, tag = name("val-img"), f"local/{name('img')}:v1"
    cleanup.append(n)
    docker_api.tag(BUSYBOX, tag.rsplit(":", 1)[0], "v1")
    try:
        assert agent.post("/tools", json=body(n, image=tag)).status_code == 201
        assert plan_of(agent, body(n, image=tag))["action"] == "unchanged"
        # retag: build a new image from busybox with a changed label, under the same reference
        container = docker_api.create_container(BUSYBOX, command=["true"])
        try:
            docker_api.commit(container["Id"], repository=tag.rsplit(":", 1)[0], tag="v1", conf={"Labels": {"rebuilt": "1"}})
        finally:
            docker_api.remove_container(container["Id"], force=True)
        plan = plan_of(agent, body(n, image=tag))
        assert plan["action"] == "recreate" and plan["reason"] == "image changed", plan
    finally:
        docker_api.remove_container(n, force=True)
        docker_api.remove_image(tag, force=True)


def test_validate_conflict_with_an_unmanaged_container(agent, docker_api, cleanup, name):
    n = name("val-foreign")
    cleanup.append(n)
    foreign = docker_api.create_container(BUSYBOX, command=["sleep", "3600"], name=n)
    plan = plan_of(agent, body(n))
    assert plan["action"] == "conflict", plan
    assert "does not manage" in plan["reason"]
    assert [c["Id"] for c in named(docker_api, n)] == [foreign["Id"]]


def test_validate_conflict_with_an_mcp_server(agent, cleanup, name):
    group, n = name("val-grp"), name("val-mcp")
    cleanup.append(n)
    r = agent.post("/mcp/groups", json={"groupId": group, "servers": [
        {"instanceNameOnToolbox": n, "dockerImageUrl": BUSYBOX, "mcpTransportType": "stdio",
         "baseConfigOverrideJson": SLEEP}]})
    assert r.status_code == 201, r.text
    plan = plan_of(agent, body(n))
    assert plan["action"] == "conflict" and group in plan["reason"], plan


def test_validate_unsafe_override_is_400_as_on_deploy(agent, docker_api, cleanup, name):
    n = name("val-unsafe")
    cleanup.append(n)
    unsafe = body(n, {"HostConfig": {"Privileged": True}})
    r = agent.post("/tools/validate", json=unsafe)
    assert r.status_code == 400, r.text
    assert r.json()["success"] is False and "Privileged" in r.json()["message"]
    deploy = agent.post("/tools", json=unsafe)
    assert deploy.status_code == 400 and deploy.json()["message"] == r.json()["message"]
    assert named(docker_api, n) == []


def test_validate_invalid_body_is_422_naming_the_field(agent, docker_api, name):
    n = name("val-bad")
    r = agent.post("/tools/validate", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": "bad name!",
                                            "accountToolInstanceId": "a"})
    assert r.status_code == 422, r.text
    assert "instanceNameOnToolbox" in [f["field"] for f in r.json()["fields"]]
    r = agent.post("/tools/validate", json={"instanceNameOnToolbox": n, "accountToolInstanceId": "a"})
    assert r.status_code == 422 and "dockerImageUrl" in [f["field"] for f in r.json()["fields"]]
    assert named(docker_api, n) == []


def test_validate_needs_the_token(agent, name):
    r = requests.post(agent.url + "/tools/validate", json=body(name("val-auth")), timeout=10)
    assert r.status_code == 401
