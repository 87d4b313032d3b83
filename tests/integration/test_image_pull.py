"""`pull` and `registry_auth` of agentopia.dtma.dtma_mcp_group and agentopia.dtma.dtma_tool in real ansible-playbook
runs against a real agent, real Docker and a real registry with authentication (Debian's docker-registry on
loopback): a tag moved in the registry is deployed with pull=always (changed, then not changed), refused credentials
fail naming registry_auth with nothing deployed, pull=never with an image not on the host fails naming pull, and the
password never reaches the output."""

from __future__ import annotations

import pytest
from dtma_testing import BUSYBOX, moving_latest

GROUP = "agentopia.dtma.dtma_mcp_group"
TOOL = "agentopia.dtma.dtma_tool"
CMD = {"Cmd": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]}


@pytest.fixture
def pushed(docker_api, registry, name):
    """local/busybox pushed to the registry and removed from the host; push_rev2() moves the tag to a new image in
    the registry only (the host's tag stays on the first)."""
    yield from moving_latest(docker_api, registry, name("mod-busybox"), name("rev2"))


def image_of(docker_api, container: str):
    try:
        return docker_api.inspect_container(container)["Image"]
    except Exception:  # pylint: disable=broad-except  # no such container
        return None


def test_group_pull_always_with_credentials(agent, ansible_run, docker_api, registry, pushed, name, groups):
    ref, rev1, push_rev2 = pushed
    gid, srv = name("mpull"), name("mpull-srv")
    groups.append(gid)
    server = {"name": srv, "image": ref, "transport": "stdio", "config_override": CMD, "pull": "always",
              "registry_auth": {"username": registry.USER, "password": registry.password}}
    task = {GROUP: {"name": gid, "servers": [server], "settle": 0.5}}
    r = ansible_run([task, task, {**task, "check_mode": True}], agent=agent)
    assert r[0]["failed"] is False and r[0]["changed"] is True, r
    assert r[0]["servers"][0]["outcome"] == "created" and image_of(docker_api, srv) == rev1
    assert r[0]["name"] == gid and r[0]["group"] == gid  # name, and group (deprecated) as well
    assert r[1]["failed"] is False and r[1]["changed"] is False, r[1]
    assert r[1]["servers"][0]["outcome"] == "unchanged" and r[1]["plan"][0]["pull"] is True
    assert r[2]["changed"] is False and r[2]["plan"][0]["pull"] is True  # check mode: the plan for the local image

    rev2 = push_rev2()
    stale = {GROUP: {"name": gid, "servers": [dict(server, pull="missing")], "settle": 0.5}}
    r = ansible_run([stale, task, task], agent=agent)
    assert r[0]["changed"] is False and r[0]["plan"][0]["pull"] is False, r[0]  # missing: :latest is not refreshed
    assert r[1]["failed"] is False and r[1]["changed"] is True, r[1]
    assert r[1]["servers"][0]["outcome"] == "recreated" and image_of(docker_api, srv) == rev2
    assert r[2]["changed"] is False, r[2]
    assert registry.password not in r.output


def test_group_refused_credentials_fail_naming_registry_auth(
        agent, ansible_run, docker_api, registry, pushed, name, groups):
    ref, _rev1, _push = pushed
    gid, srv, other = name("mauth"), name("mauth-srv"), name("mauth-ok")
    groups.append(gid)
    wrong = "wrong-" + registry.password
    task = {GROUP: {"name": gid, "settle": 0.5, "servers": [
        {"name": other, "image": BUSYBOX, "transport": "stdio", "config_override": CMD},
        {"name": srv, "image": ref, "transport": "stdio", "config_override": CMD, "pull": "always",
         "registry_auth": {"username": registry.USER, "password": wrong}}]}}
    r = ansible_run([task], agent=agent, verbosity=3)
    assert r[0]["failed"] is True, r
    assert f"servers[{srv}].registry_auth: the registry refused the credentials of user 'dtmatest'" in r[0]["msg"]
    assert "nothing was changed" in r[0]["msg"] and r[0]["status"] == 422
    assert image_of(docker_api, srv) is None and image_of(docker_api, other) is None
    assert wrong not in r.output and registry.password not in r.output  # no_log, even at -vvv


def test_pull_never_fails_naming_pull_and_changes_nothing(agent, ansible_run, docker_api, pushed, name, groups, cleanup):
    ref, _rev1, _push = pushed  # in the registry only
    gid, srv, tool = name("mnever"), name("mnever-srv"), name("mnever-tool")
    groups.append(gid)
    cleanup.append(tool)
    r = ansible_run([
        {GROUP: {"name": gid, "servers": [{"name": srv, "image": ref, "transport": "stdio", "pull": "never"}]}},
        {TOOL: {"name": tool, "image": ref, "account_tool_instance_id": "ati-never", "pull": "never"}},
        {TOOL: {"name": tool, "image": BUSYBOX, "account_tool_instance_id": "ati-never", "pull": "never", "config": CMD,
                "settle": 0.5}},
    ], agent=agent)
    assert r[0]["failed"] is True and f"servers[{srv}].pull: image" in r[0]["msg"] and "pull is never" in r[0]["msg"], r[0]
    assert r[1]["failed"] is True and "pull: image" in r[1]["msg"] and r[1]["status"] == 422, r[1]
    assert image_of(docker_api, srv) is None
    assert r[2]["failed"] is False and r[2]["changed"] is True, r[2]  # a local image deploys with never
    assert r[2]["tool"]["name"] == tool and r[2]["tool"]["instance_name_on_toolbox"] == tool


def test_tool_pull_always_with_credentials(agent, ansible_run, docker_api, registry, pushed, name, cleanup):
    ref, rev1, push_rev2 = pushed
    n = name("tpull")
    cleanup.append(n)
    task = {TOOL: {"name": n, "image": ref, "account_tool_instance_id": "ati-pull", "config": CMD, "settle": 0.5,
                   "pull": "always", "registry_auth": {"username": registry.USER, "password": registry.password},
                   "stop_timeout": 1}}
    wrong = {TOOL: dict(task[TOOL], registry_auth={"username": registry.USER, "password": "nope-" + registry.password})}
    stopped = {TOOL: dict(task[TOOL], state="stopped")}
    r = ansible_run([wrong, task, task, stopped, stopped], agent=agent)
    assert r[0]["failed"] is True and "registry_auth: the registry refused the credentials" in r[0]["msg"], r[0]
    assert r[1]["changed"] is True and r[1]["actions"] == ["created"] and image_of(docker_api, n) == rev1, r[1]
    assert r[2]["changed"] is False and r[2]["plan"]["pull"] is True, r[2]
    assert r[3]["changed"] is True and r[3]["actions"] == ["stopped"], r[3]
    assert r[4]["changed"] is False and r[4]["tool"]["state"] == "exited", r[4]  # pulled, not started again

    rev2 = push_rev2()
    r = ansible_run([task, task], agent=agent)
    assert r[0]["changed"] is True and r[0]["actions"] == ["recreated"] and image_of(docker_api, n) == rev2, r[0]
    assert r[1]["changed"] is False, r[1]
    assert registry.password not in r.output
