"""pullPolicy and registryAuth against a real registry with authentication (Debian's docker-registry on loopback):
`:latest` moved in the registry is deployed with `always` and only then; wrong or missing credentials are a 422
naming registryAuth and nothing is deployed; `never` with an image that is not on the host is a 422 naming
pullPolicy; the password is never in an answer or the agent's log."""

from __future__ import annotations

import pytest
from dtma_testing import BUSYBOX, moving_latest

BUSYBOX_CMD = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]


@pytest.fixture
def moving_tag(docker_api, registry, name):
    """An image in the registry under a tag that is then moved to a new image, as a release pushed as :latest is.
    Yields (reference, rev1, push_rev2): push_rev2() pushes the second image under the same reference and points the
    host's tag back at the first, so the host believes it has the tag's image; only a pull can tell."""
    yield from moving_latest(docker_api, registry, name("busybox").lower(), name("rev2"))


def server(name: str, image: str, **fields) -> dict:
    return {"instanceNameOnToolbox": name, "dockerImageUrl": image, "mcpTransportType": "stdio",
            "baseConfigOverrideJson": {"Cmd": BUSYBOX_CMD}, **fields}


def group(group_id: str, *servers: dict) -> dict:
    return {"groupId": group_id, "servers": list(servers), "options": {"settleSeconds": 0.5}}


def container_image(docker_api, name: str) -> str | None:
    try:
        return docker_api.inspect_container(name)["Image"]
    except Exception:  # pylint: disable=broad-except  # no such container
        return None


def no_secret(registry, agent, *responses):
    for r in responses:
        assert registry.password not in r.text
    assert registry.password not in agent.log()


def test_always_deploys_a_moved_tag_and_missing_does_not(agent, docker_api, registry, moving_tag, name, groups):
    ref, rev1, push_rev2 = moving_tag
    gid, srv = name("pull-grp"), name("pull-srv")
    groups.append(gid)
    always = server(srv, ref, pullPolicy="always", registryAuth=registry.auth)

    created = agent.post("/mcp/groups", json=group(gid, always))
    assert created.status_code == 201, created.text
    assert created.json()["data"]["servers"][0]["outcome"] == "created"
    assert container_image(docker_api, srv) == rev1

    # the plan cannot pull (a side effect): it is the plan for the local image, and says the apply pulls first
    plan = agent.post("/mcp/validate", json=group(gid, always)).json()["data"]["plan"]
    assert plan[0]["action"] == "unchanged" and plan[0]["pull"] is True
    assert "pulled first (pullPolicy always)" in plan[0]["reason"]
    again = agent.post("/mcp/groups", json=group(gid, always))
    assert again.status_code == 201 and again.json()["data"]["servers"][0]["outcome"] == "unchanged", again.text

    rev2 = push_rev2()
    # missing: the host has the tag, nothing is pulled, the old image stays (what :latest did before pullPolicy)
    missing = server(srv, ref, registryAuth=registry.auth)
    plan = agent.post("/mcp/validate", json=group(gid, missing)).json()["data"]["plan"]
    assert plan[0]["action"] == "unchanged" and plan[0]["pull"] is False
    stale = agent.post("/mcp/groups", json=group(gid, missing))
    assert stale.json()["data"]["servers"][0]["outcome"] == "unchanged" and container_image(docker_api, srv) == rev1

    moved = agent.post("/mcp/groups", json=group(gid, always))
    assert moved.status_code == 201, moved.text
    result = moved.json()["data"]["servers"][0]
    assert result["outcome"] == "recreated" and result["reason"].startswith("image changed"), result
    assert container_image(docker_api, srv) == rev2
    assert docker_api.inspect_image(ref)["Id"] == rev2
    no_secret(registry, agent, created, again, stale, moved)


def test_wrong_or_missing_credentials_are_422_naming_registry_auth_and_deploy_nothing(
        agent, docker_api, registry, moving_tag, name, groups):
    ref, _rev1, _push = moving_tag
    gid, srv, other = name("auth-grp"), name("auth-srv"), name("auth-ok")
    groups.append(gid)
    wrong = dict(registry.auth, password="not-" + registry.password)
    ok_server = server(other, BUSYBOX)

    refused = agent.post("/mcp/groups", json=group(gid, ok_server, server(srv, ref, pullPolicy="always", registryAuth=wrong)))
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["error"] == "registry authentication failed" and body["field"] == f"servers[{srv}].registryAuth"
    assert body["message"].startswith(f"servers[{srv}].registryAuth: the registry refused the credentials of user 'dtmatest'")
    assert wrong["password"] not in refused.text and wrong["password"] not in agent.log()
    # pulled before anything else: the other server of the group was not deployed either
    assert container_image(docker_api, srv) is None and container_image(docker_api, other) is None

    anonymous = agent.post("/mcp/groups", json=group(gid, server(srv, ref, pullPolicy="always")))
    assert anonymous.status_code == 422, anonymous.text
    assert anonymous.json()["error"] == "registry authentication required"
    assert anonymous.json()["field"] == f"servers[{srv}].registryAuth"

    # missing: the pull happens for that server only, when it is created; it fails, naming the field, and the rest
    # of the group is deployed (the agent's per-server outcome)
    partial = agent.post("/mcp/groups", json=group(gid, ok_server, server(srv, ref, registryAuth=wrong)))
    assert partial.status_code == 422, partial.text
    outcomes = {s["name"]: s for s in partial.json()["data"]["servers"]}
    assert outcomes[srv]["outcome"] == "failed" and outcomes[srv]["field"] == f"servers[{srv}].registryAuth"
    assert outcomes[other]["outcome"] == "created" and container_image(docker_api, srv) is None
    no_secret(registry, agent, refused, anonymous, partial)


def test_never_with_an_image_not_on_the_host_is_422_and_deploys_nothing(agent, docker_api, registry, moving_tag, name, groups):
    ref, _rev1, _push = moving_tag  # in the registry, not on the host
    gid, srv, other = name("never-grp"), name("never-srv"), name("never-ok")
    groups.append(gid)
    never = server(srv, ref, pullPolicy="never", registryAuth=registry.auth)
    payload = group(gid, server(other, BUSYBOX, pullPolicy="never"), never)
    for path in ("/mcp/validate", "/mcp/groups"):
        r = agent.post(path, json=payload)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == f"servers[{srv}].pullPolicy" and "pullPolicy is never" in r.json()["message"]
    assert container_image(docker_api, srv) is None and container_image(docker_api, other) is None
    # a local image deploys with never
    payload["servers"] = payload["servers"][:1]
    assert agent.post("/mcp/groups", json=payload).status_code == 201


@pytest.mark.parametrize("bad, field", [
    ({"pullPolicy": "sometimes"}, "pullPolicy"),
    ({"pullPolicy": True}, "pullPolicy"),
    ({"registryAuth": {"username": "u"}}, "registryAuth.password"),
    ({"registryAuth": {"username": "", "password": "p"}}, "registryAuth.username"),
    ({"registryAuth": "user:password"}, "registryAuth"),
])
def test_invalid_pull_fields_are_422_naming_them(agent, name, bad, field):
    tool = {"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": name("bad"), "accountToolInstanceId": "a", **bad}
    r = agent.post("/tools/validate", json=tool)
    assert r.status_code == 422, r.text
    assert field in [f["field"] for f in r.json()["fields"]]
    r = agent.post("/mcp/validate", json=group(name("bad-grp"), server(name("bad-srv"), BUSYBOX, **bad)))
    assert r.status_code == 422 and f"servers.0.{field}" in [f["field"] for f in r.json()["fields"]], r.text


def test_tools_pull_always_and_never(agent, docker_api, registry, moving_tag, name, cleanup):
    ref, rev1, push_rev2 = moving_tag
    n = name("pull-tool")
    cleanup.append(n)
    body = {"dockerImageUrl": ref, "instanceNameOnToolbox": n, "accountToolInstanceId": "ati-pull",
            "baseConfigOverrideJson": {"Cmd": BUSYBOX_CMD}, "settleSeconds": 0.5, "pullPolicy": "always",
            "registryAuth": registry.auth}
    wrong = agent.put(f"/tools/{n}", json={**body, "registryAuth": dict(registry.auth, password="nope-nope")})
    assert wrong.status_code == 422 and wrong.json()["field"] == "registryAuth", wrong.text
    assert container_image(docker_api, n) is None

    created = agent.put(f"/tools/{n}", json=body)
    assert created.status_code == 201 and created.json()["outcome"] == "created", created.text
    assert created.json()["data"]["name"] == n and container_image(docker_api, n) == rev1
    plan = agent.post("/tools/validate", json=body).json()["data"]["plan"]
    assert plan["action"] == "unchanged" and plan["pull"] is True
    assert agent.put(f"/tools/{n}", json=body).json()["outcome"] == "unchanged"

    # a stopped tool with start=false stays stopped through a pull that changes nothing
    assert agent.post(f"/tools/{n}/stop", params={"timeout": 0}).status_code == 200
    kept = agent.put(f"/tools/{n}", json=body, params={"start": "false"})
    assert kept.json()["outcome"] == "unchanged" and kept.json()["data"]["state"] == "exited", kept.text

    rev2 = push_rev2()
    moved = agent.put(f"/tools/{n}", json=body)
    assert moved.json()["outcome"] == "recreated" and container_image(docker_api, n) == rev2, moved.text

    docker_api.remove_image(ref, force=True)
    never = agent.put(f"/tools/{n}", json={**body, "pullPolicy": "never"})
    assert never.status_code == 422 and never.json()["field"] == "pullPolicy", never.text
    assert container_image(docker_api, n) == rev2  # left as it was
    no_secret(registry, agent, wrong, created, kept, moved, never)
