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
            "graceful_timeout": 10, "timeout": 30, "settle": None}
    base.update(overrides)
    return base


def server(**overrides):
    """A server option as Ansible hands it over: every suboption present, unset ones None."""
    base = {"name": "s1", "image": "local/busybox:latest", "account_tool_instance_id": None, "endpoint_path": "/mcp",
            "transport": "streamable-http", "ports": None, "env": None, "resources": None, "resource_template": None,
            "config_override": None}
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
    base_url = "http://agent:30000"

    def __init__(self, plan=None, status=None, errors=None):
        self.plan = plan or []
        self.status = status or []
        self.errors = errors or {}
        self.calls = []

    def _answer(self, method, segments, kwargs):
        self.calls.append((method, "/".join(segments), kwargs.get("params")))
        error = self.errors.get((method, "/".join(segments)))
        if error:
            raise error
        if segments == ("mcp", "validate"):
            return {"data": {"plan": self.plan}}
        if segments == ("mcp", "status"):
            return {"mcp_servers": self.status}
        if segments == ("mcp", "groups"):
            return {"data": {"servers": [{"name": s["name"], "outcome": "created"} for s in self.plan]}}
        if segments[:2] == ("mcp", "servers"):
            return {"data": {"container_id": "new", "state": "running"}}
        if method == "DELETE":
            return {"data": {"servers": [{"name": s["server"], "outcome": "removed"} for s in self.status]}}
        raise AssertionError("unexpected call %s %s" % (method, segments))

    def get(self, *segments, **kwargs):
        return self._answer("GET", segments, kwargs)

    def post(self, *segments, **kwargs):
        return self._answer("POST", segments, kwargs)

    def delete(self, *segments, **kwargs):
        return self._answer("DELETE", segments, kwargs)


def run(module, client):
    manager = mod.GroupManager(module, client)
    getattr(manager, module.params["state"])()
    return manager.result


def test_unchanged_plan_deploys_nothing():
    client = FakeClient(plan=[{"name": "s1", "action": "unchanged", "reason": "up to date", "container_id": "c1"}],
                        status=[view("s1")])
    result = run(FakeModule(servers=[server()]), client)
    assert result["changed"] is False
    assert result["servers"] == [{"name": "s1", "outcome": "unchanged", "reason": "up to date", "container_id": "c1"}]
    assert [c[1] for c in client.calls] == ["mcp/validate", "mcp/status"]


def test_check_mode_returns_the_plan_and_deploys_nothing():
    plan = [{"name": "s1", "action": "create", "reason": "not deployed", "container_id": None}]
    client = FakeClient(plan=plan)
    result = run(FakeModule(check_mode=True, servers=[server()]), client)
    assert result["changed"] is True and result["servers"] == plan and result["plan"] == plan
    assert "mcp/groups" not in [c[1] for c in client.calls]


def test_a_changed_plan_deploys():
    client = FakeClient(plan=[{"name": "s1", "action": "create", "reason": "not deployed", "container_id": None}])
    result = run(FakeModule(servers=[server()], diff=False), client)
    assert result["changed"] is True and result["servers"] == [{"name": "s1", "outcome": "created"}]
    assert "diff" not in result
    assert [c[1] for c in client.calls] == ["mcp/validate", "mcp/groups"]


def test_conflict_fails_before_deploying():
    client = FakeClient(plan=[{"name": "s1", "action": "conflict", "reason": "the name is used by group other", "container_id": "x"}])
    with pytest.raises(Failed) as failed:
        run(FakeModule(servers=[server()]), client)
    assert "s1: the name is used by group other" in failed.value.args[0]["msg"]
    assert "mcp/groups" not in [c[1] for c in client.calls]


def test_invalid_spec_names_the_option():
    error = DtmaInvalid("DTMA agent answered HTTP 422: ...", 422, {
        "error": "invalid request", "message": "servers.0.instanceNameOnToolbox: String should match pattern",
        "fields": [{"field": "servers.0.instanceNameOnToolbox", "message": "String should match pattern"}]})
    with pytest.raises(Failed) as failed:
        run(FakeModule(servers=[server(name="a/b")]), FakeClient(errors={("POST", "mcp/validate"): error}))
    fields = failed.value.args[0]
    assert "servers[0].name: String should match pattern (HTTP 422)" in fields["msg"]
    assert fields["status"] == 422 and fields["fields"][0]["option"] == "servers[0].name"


def test_absent_on_a_missing_group_is_unchanged():
    client = FakeClient(status=[view("other")])
    client.status[0]["group_id"] = "g2"
    result = run(FakeModule(state="absent"), client)
    assert result["changed"] is False and result["servers"] == []
    assert [c[0] for c in client.calls] == ["GET"]


def test_absent_sends_the_removal_options():
    client = FakeClient(status=[view("a")])
    result = run(FakeModule(state="absent", force_remove=True, graceful_timeout=3), client)
    assert result["changed"] is True and result["servers"] == [{"name": "a", "outcome": "removed"}]
    assert client.calls[-1] == ("DELETE", "mcp/groups/g1", {"forceRemove": "true", "gracefulTimeoutMs": 3000})


def test_absent_raced_by_someone_else_is_unchanged():
    client = FakeClient(status=[view("a")], errors={("DELETE", "mcp/groups/g1"): DtmaNotFound("gone", 404, {})})
    result = run(FakeModule(state="absent"), client)
    assert result["changed"] is False and result["servers"] == []


def test_restart_limit_names_the_server_and_retry_after():
    limited = DtmaRateLimited("DTMA agent answered HTTP 429: ...", 429,
                              {"error": "restart cooldown", "message": "b was restarted 2s ago; wait 28s"}, "29")
    client = FakeClient(status=[view("b"), view("a")], errors={("POST", "mcp/servers/b/restart"): limited})
    with pytest.raises(Failed) as failed:
        run(FakeModule(state="restarted"), client)
    fields = failed.value.args[0]
    assert fields["msg"].startswith("MCP server b of group g1 was not restarted")
    assert "retry after 29 seconds" in fields["msg"] and "Restarted before it: a" in fields["msg"]
    assert fields["retry_after"] == 29 and fields["status"] == 429 and fields["changed"] is True
