# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure parts of dtma_mcp_group: the payload the agent gets, the option names in its errors, the diff, the wait
verdict, and the manager's decisions with a fake client (no HTTP)."""

from __future__ import annotations

import pytest

from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaInvalid, DtmaNotFound, DtmaRateLimited
from ansible_collections.agentopia.dtma.plugins.modules import dtma_mcp_group as mod


def params(**overrides):
    base = {"name": "g1", "state": "present", "servers": [], "max_concurrent": 3, "dependency_order": [],
            "shared_networking": False, "wait": False, "wait_timeout": 60, "force_remove": False,
            "stop_timeout": 10, "timeout": 30, "settle": None}
    base.update(overrides)
    return base


def server(**overrides):
    """A server option as Ansible hands it over: every suboption present, unset ones None."""
    base = {"name": "s1", "image": "local/busybox:latest", "account_tool_instance_id": None, "endpoint_path": "/mcp",
            "transport": "streamable-http", "ports": None, "env": None, "resources": None, "resource_template": None,
            "config_override": None, "pull": "missing", "registry_auth": None}
    base.update(overrides)
    return base


# ---------------------------------------------------------------- payload


def test_minimal_server_sends_only_what_is_set():
    assert mod.server_payload(server()) == {"instanceNameOnToolbox": "s1", "dockerImageUrl": "local/busybox:latest",
                                            "mcpEndpointPath": "/mcp", "mcpTransportType": "streamable-http"}


def test_full_server_maps_every_option_to_the_agents_field():
    spec = server(account_tool_instance_id="ati-1", endpoint_path="/sse", transport="sse", ports={"8080": 31001},
                  env={"KEY": "v"}, resources={"memory": "256m", "cpus": None}, resource_template="medium",
                  config_override={"Cmd": ["sleep", "3600"]})
    assert mod.server_payload(spec) == {
        "instanceNameOnToolbox": "s1", "dockerImageUrl": "local/busybox:latest", "accountToolInstanceId": "ati-1",
        "mcpEndpointPath": "/sse", "mcpTransportType": "sse", "portBindings": {"8080": 31001},
        "environmentVariables": {"KEY": "v"}, "resourceLimits": {"memory": "256m", "template": "medium"},
        "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}}


def test_pull_policy_and_registry_auth_are_sent_only_when_set():
    assert "pullPolicy" not in mod.server_payload(server()) and "registryAuth" not in mod.server_payload(server())
    spec = server(pull="always", registry_auth={"username": "u", "password": "p", "serveraddress": None})
    payload = mod.server_payload(spec)
    assert payload["pullPolicy"] == "always"
    assert payload["registryAuth"] == {"username": "u", "password": "p"}
    assert mod.server_payload(server(pull="never"))["pullPolicy"] == "never"


def test_template_alone_and_empty_resources():
    assert mod.server_payload(server(resource_template="small"))["resourceLimits"] == {"template": "small"}
    assert "resourceLimits" not in mod.server_payload(server(resources={"memory": None, "cpus": None}))


def test_group_payload_options():
    body = mod.group_payload(params(servers=[server(), server(name="s2")], max_concurrent=1, dependency_order=["s2"],
                                    shared_networking=True))
    assert body["groupId"] == "g1"
    assert [s["instanceNameOnToolbox"] for s in body["servers"]] == ["s1", "s2"]
    assert body["options"] == {"maxConcurrentDeployments": 1, "dependencyOrder": ["s2"], "sharedNetworking": True}


def test_group_payload_without_servers():
    assert mod.group_payload(params(servers=None))["servers"] == []


# ---------------------------------------------------------------- agent field names -> option names


@pytest.mark.parametrize("agent_text, option_text", [
    ("servers.0.instanceNameOnToolbox: String should match pattern", "servers[0].name: String should match pattern"),
    ("servers.12.mcpTransportType: bad", "servers[12].transport: bad"),
    ("servers[web].baseConfigOverrideJson.HostConfig.Privileged is not allowed",
     "servers[web].config_override.HostConfig.Privileged is not allowed"),
    ("options.dependencyOrder: names 'x'", "dependency_order: names 'x'"),
    ("groupId: too long", "name: too long"),
    ("servers.1.portBindings: invalid container port", "servers[1].ports: invalid container port"),
    ("servers[web].pullPolicy: image 'x' is not present", "servers[web].pull: image 'x' is not present"),
    ("servers[web].registryAuth: the registry refused", "servers[web].registry_auth: the registry refused"),
    ("nothing to rename here", "nothing to rename here"),
])
def test_option_path(agent_text, option_text):
    assert mod.option_path(agent_text) == option_text


# ---------------------------------------------------------------- diff


def view(name, state="running", config="abcdef0123456789", image="local/busybox:latest"):
    return {"group_id": "g1", "server": name, "name": name, "image": image, "state": state, "mcp_transport": "streamable-http",
            "mcp_endpoint_path": "/mcp", "config_hash": config, "container_id": "id-" + name}


def test_diff_keeps_hashes_of_kept_servers_and_marks_new_ones():
    current = [view("b", state="exited", config="h-b"), view("a", config="h-a"), view("gone", config="h-gone")]
    payload = mod.group_payload(params(servers=[server(name="a"), server(name="b"), server(name="c", env={"K": "secret"})]))
    plan = [{"name": "a", "action": "recreate", "reason": "configuration changed"},
            {"name": "b", "action": "start", "reason": "container is exited"},
            {"name": "c", "action": "create", "reason": "not deployed"},
            {"name": "gone", "action": "remove", "reason": "not in the payload"}]
    diff = mod.build_diff(current, payload, plan)
    assert [s["name"] for s in diff["before"]["servers"]] == ["a", "b", "gone"]
    assert diff["before"]["servers"][1] == {"name": "b", "image": "local/busybox:latest", "state": "exited",
                                            "transport": "streamable-http", "endpoint_path": "/mcp", "config": "h-b"}
    after = dict((s["name"], s) for s in diff["after"]["servers"])
    assert sorted(after) == ["a", "b", "c"]
    assert after["a"]["config"] == "new (configuration changed)"
    assert after["b"]["config"] == "h-b" and after["b"]["state"] == "running"
    assert after["c"]["config"] == "new (not deployed)"
    assert "secret" not in str(diff) and "K" not in str(after["c"])


def test_diff_of_an_unchanged_group_is_empty():
    current = [view("a", config="h-a")]
    payload = mod.group_payload(params(servers=[server(name="a")]))
    diff = mod.build_diff(current, payload, [{"name": "a", "action": "unchanged", "reason": "up to date"}])
    assert diff["before"] == diff["after"]


# ---------------------------------------------------------------- wait verdict


def test_ready_and_summary():
    healthy = {"server": "a", "health": {"status": "healthy", "container": "running"}}
    probe_failed = {"server": "b", "health": {"status": "unhealthy", "container": "running", "reason": "MCP probe failed: HTTP 404"}}
    stopped = {"server": "c", "health": {"status": "unhealthy", "container": "exited"}}
    assert mod.is_ready(healthy) and not mod.is_ready(probe_failed) and not mod.is_ready(stopped)
    summary = mod.unhealthy_summary([healthy, probe_failed, stopped], ["a", "b", "c", "d"])
    assert summary == "b: MCP probe failed: HTTP 404; c: container is exited; d: no container"


# ---------------------------------------------------------------- the manager's decisions, with fakes


class Failed(Exception):
    pass


class FakeModule(object):
    def __init__(self, check_mode=False, diff=True, **overrides):
        self.params = params(**overrides)
        self.check_mode = check_mode
        self._diff = diff

    def fail_json(self, **kwargs):
        raise Failed(kwargs)


class FakeClient(object):
    """The client's verbs, answering from what the test gave; records each call."""

    base_url = "http://agent:30000"

    def __init__(self, plan=None, status=None, errors=None, outcomes=None):
        self.plan = plan or []
        self.status = status or []
        self.errors = errors or {}
        self.outcomes = outcomes
        self.calls = []

    def _call(self, verb, *args):
        self.calls.append((verb,) + args)
        if verb in self.errors:
            raise self.errors[verb]

    def mcp_servers(self, group=None):
        self._call("mcp_servers", group)
        return [s for s in self.status if group is None or s.get("group_id") == group]

    def validate_group(self, payload):
        self._call("validate_group")
        return self.plan

    def deploy_group(self, payload, wait_s):
        self._call("deploy_group", wait_s)
        outcomes = self.outcomes or dict((s["name"], "created") for s in self.plan)
        return {"data": {"servers": [{"name": n, "outcome": o} for n, o in outcomes.items()]}}

    def remove_group(self, group, force, grace):
        self._call("remove_group", group, force, grace)
        return {"data": {"servers": [{"name": s["name"], "outcome": "removed"} for s in self.status]}}

    def restart_server(self, name, grace):
        self._call("restart_server", name, grace)
        if ("restart", name) in self.errors:
            raise self.errors[("restart", name)]
        return {"data": {"container_id": "new", "state": "running"}}


def run(module, client):
    """The manager's dispatch on the state, without the module's exit."""
    manager = mod.GroupManager(module, client)
    manager.handler()()
    return manager.result


def test_unchanged_plan_deploys_nothing():
    client = FakeClient(plan=[{"name": "s1", "action": "unchanged", "reason": "up to date", "container_id": "c1"}],
                        status=[view("s1")])
    result = run(FakeModule(servers=[server()]), client)
    assert result["changed"] is False
    assert result["servers"] == [{"name": "s1", "outcome": "unchanged", "reason": "up to date", "container_id": "c1"}]
    assert [c[0] for c in client.calls] == ["validate_group", "mcp_servers"]
    assert result["name"] == "g1" and result["group"] == "g1"  # group: the deprecated name of name


def test_check_mode_returns_the_plan_and_deploys_nothing():
    plan = [{"name": "s1", "action": "create", "reason": "not deployed", "container_id": None}]
    client = FakeClient(plan=plan)
    result = run(FakeModule(check_mode=True, servers=[server()]), client)
    assert result["changed"] is True and result["servers"] == plan and result["plan"] == plan
    assert "deploy_group" not in [c[0] for c in client.calls]


def test_a_changed_plan_deploys():
    client = FakeClient(plan=[{"name": "s1", "action": "create", "reason": "not deployed", "container_id": None}])
    result = run(FakeModule(servers=[server()], diff=False), client)
    assert result["changed"] is True and result["servers"] == [{"name": "s1", "outcome": "created"}]
    assert "diff" not in result
    assert [c[0] for c in client.calls] == ["validate_group", "deploy_group"]


def test_pull_always_deploys_an_unchanged_plan_and_reports_what_the_apply_did():
    """The plan for the local image says unchanged; the agent pulls first, so only the apply knows."""
    plan = [{"name": "s1", "action": "unchanged", "reason": "up to date", "container_id": "c1", "pull": True},
            {"name": "s2", "action": "unchanged", "reason": "up to date", "container_id": "c2", "pull": True}]
    client = FakeClient(plan=plan, outcomes={"s1": "unchanged", "s2": "unchanged"})
    result = run(FakeModule(servers=[server(pull="always"), server(name="s2", pull="always")], diff=False), client)
    assert [c[0] for c in client.calls] == ["validate_group", "deploy_group"]
    assert result["changed"] is False
    client = FakeClient(plan=plan, outcomes={"s1": "recreated", "s2": "unchanged"})
    result = run(FakeModule(servers=[server(pull="always"), server(name="s2", pull="always")], diff=False), client)
    assert result["changed"] is True and result["servers"][0] == {"name": "s1", "outcome": "recreated"}


def test_pull_always_in_check_mode_shows_the_plan_and_pulls_nothing():
    plan = [{"name": "s1", "action": "unchanged", "reason": "up to date", "container_id": "c1", "pull": True}]
    client = FakeClient(plan=plan)
    result = run(FakeModule(check_mode=True, servers=[server(pull="always")], diff=False), client)
    assert result["changed"] is False and result["plan"] == plan
    assert [c[0] for c in client.calls] == ["validate_group"]


def test_a_refused_pull_fails_naming_the_option_and_saying_nothing_changed():
    error = DtmaInvalid("DTMA agent answered HTTP 422: ...", 422, {
        "error": "registry authentication failed", "field": "servers[s1].registryAuth",
        "message": "servers[s1].registryAuth: the registry refused the credentials for 127.0.0.1:5000/x:latest"})
    plan = [{"name": "s1", "action": "unchanged", "reason": "up to date", "container_id": "c1", "pull": True}]
    with pytest.raises(Failed) as failed:
        run(FakeModule(servers=[server(pull="always")], diff=False), FakeClient(plan=plan, errors={"deploy_group": error}))
    fields = failed.value.args[0]
    assert "servers[s1].registry_auth: the registry refused the credentials" in fields["msg"]
    assert "nothing was changed" in fields["msg"] and fields["status"] == 422
    assert fields["agent_error"] == "registry authentication failed"


def test_conflict_fails_before_deploying():
    client = FakeClient(plan=[{"name": "s1", "action": "conflict", "reason": "the name is used by group other", "container_id": "x"}])
    with pytest.raises(Failed) as failed:
        run(FakeModule(servers=[server()]), client)
    assert "s1: the name is used by group other" in failed.value.args[0]["msg"]
    assert "deploy_group" not in [c[0] for c in client.calls]


def test_invalid_spec_names_the_option():
    error = DtmaInvalid("DTMA agent answered HTTP 422: ...", 422, {
        "error": "invalid request", "message": "servers.0.instanceNameOnToolbox: String should match pattern",
        "fields": [{"field": "servers.0.instanceNameOnToolbox", "message": "String should match pattern"}]})
    with pytest.raises(Failed) as failed:
        run(FakeModule(servers=[server(name="a/b")]), FakeClient(errors={"validate_group": error}))
    fields = failed.value.args[0]
    assert "servers[0].name: String should match pattern (HTTP 422)" in fields["msg"]
    assert fields["status"] == 422 and fields["fields"][0]["option"] == "servers[0].name"


def test_absent_on_a_missing_group_is_unchanged():
    client = FakeClient(status=[view("other")])
    client.status[0]["group_id"] = "g2"
    result = run(FakeModule(state="absent"), client)
    assert result["changed"] is False and result["servers"] == []
    assert [c[0] for c in client.calls] == ["mcp_servers"]


def test_absent_sends_the_removal_options():
    client = FakeClient(status=[view("a")])
    result = run(FakeModule(state="absent", force_remove=True, stop_timeout=3), client)
    assert result["changed"] is True and result["servers"] == [{"name": "a", "outcome": "removed"}]
    assert client.calls[-1] == ("remove_group", "g1", True, 3)


def test_absent_raced_by_someone_else_is_unchanged():
    client = FakeClient(status=[view("a")], errors={"remove_group": DtmaNotFound("gone", 404, {})})
    result = run(FakeModule(state="absent"), client)
    assert result["changed"] is False and result["servers"] == []


def test_restart_limit_names_the_server_and_retry_after():
    limited = DtmaRateLimited("DTMA agent answered HTTP 429: ...", 429,
                              {"error": "restart cooldown", "message": "b was restarted 2s ago; wait 28s"}, 29)
    client = FakeClient(status=[view("b"), view("a")], errors={("restart", "b"): limited})
    with pytest.raises(Failed) as failed:
        run(FakeModule(state="restarted"), client)
    fields = failed.value.args[0]
    assert fields["msg"].startswith("MCP server b of group g1 was not restarted")
    assert "retry after 29 seconds" in fields["msg"] and "Restarted before it: a" in fields["msg"]
    assert fields["retry_after"] == 29 and fields["status"] == 429 and fields["changed"] is True
    assert fields["agent_error"] == "restart cooldown" and fields["server"] == "b"
    assert ("restart_server", "a", 10) in client.calls  # a, before b: in name order, with the stop grace
