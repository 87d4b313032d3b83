# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""dtma_tool's manager with a fake client (no HTTP): the body the agent gets, when it is applied (the plan, and the
pull that only the apply can make), the run state, the option names in the agent's messages, and `name`."""

from __future__ import annotations

import pytest

from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaInvalid
from ansible_collections.agentopia.dtma.plugins.modules import dtma_tool as mod


def params(**overrides):
    base = {"name": "t1", "image": "local/busybox:latest", "pull": "missing", "registry_auth": None,
            "account_tool_instance_id": "ati-1", "config": None, "env": None, "state": "started", "stop_timeout": 10,
            "settle": None, "timeout": 30}
    base.update(overrides)
    return base


class Failed(Exception):
    pass


class FakeModule(object):
    def __init__(self, check_mode=False, **overrides):
        self.params = params(**overrides)
        self.check_mode = check_mode
        self._diff = True

    def fail_json(self, **kwargs):
        raise Failed(kwargs)


def tool(state="running"):
    return {"container_id": "c1", "instance_name_on_toolbox": "t1", "account_tool_instance_id": "ati-1",
            "image": "local/busybox:latest", "state": state, "config_hash": "h1"}


class FakeClient(object):
    def __init__(self, existing=None, plan=None, outcome="unchanged", errors=None):
        self.existing = existing
        self.plan = plan
        self.outcome = outcome
        self.errors = errors or {}
        self.calls = []

    def _call(self, verb, *args):
        self.calls.append((verb,) + args)
        if verb in self.errors:
            raise self.errors[verb]

    def tools(self):
        self._call("tools")
        return [self.existing] if self.existing else []

    def validate_tool(self, body):
        self._call("validate_tool", body)
        return self.plan

    def converge_tool(self, name, body, wait_s, start=True):
        self._call("converge_tool", body, wait_s, start)
        return {"outcome": self.outcome, "data": dict(self.existing or tool(), state="running" if start else (self.existing or {}).get("state"))}

    def tool_action(self, name, action, grace):
        self._call("tool_action", action, grace)
        return {"changed": True, "data": dict(self.existing, state="exited" if action == "stop" else "running")}


def run(module, client):
    manager = mod.ToolManager(module, client)
    manager.handler()()
    return manager.result


def plan(action, pull=False, reason="up to date"):
    return {"name": "t1", "action": action, "reason": reason, "container_id": "c1", "config_hash": "h1", "pull": pull}


def test_the_body_carries_pull_and_credentials_only_when_set():
    client = FakeClient(existing=tool(), plan=plan("unchanged"))
    run(FakeModule(), client)
    body = client.calls[1][1]
    assert "pullPolicy" not in body and "registryAuth" not in body
    client = FakeClient(existing=tool(), plan=plan("unchanged", pull=True))
    run(FakeModule(pull="always", registry_auth={"username": "u", "password": "p", "serveraddress": None}), client)
    body = client.calls[1][1]
    assert body["pullPolicy"] == "always" and body["registryAuth"] == {"username": "u", "password": "p"}


def test_an_unchanged_plan_without_pull_is_not_applied():
    client = FakeClient(existing=tool(), plan=plan("unchanged"))
    result = run(FakeModule(), client)
    assert result["changed"] is False and [c[0] for c in client.calls] == ["tools", "validate_tool"]
    assert result["tool"]["name"] == "t1" and result["tool"]["instance_name_on_toolbox"] == "t1"


def test_pull_always_is_applied_and_the_apply_decides_the_change():
    client = FakeClient(existing=tool(), plan=plan("unchanged", pull=True), outcome="unchanged")
    result = run(FakeModule(pull="always"), client)
    assert [c[0] for c in client.calls] == ["tools", "validate_tool", "converge_tool"]
    assert result["changed"] is False and result["actions"] == []
    client = FakeClient(existing=tool(), plan=plan("unchanged", pull=True), outcome="recreated")
    result = run(FakeModule(pull="always"), client)
    assert result["changed"] is True and result["actions"] == ["recreated"]


def test_pull_always_in_check_mode_applies_nothing():
    client = FakeClient(existing=tool(), plan=plan("unchanged", pull=True))
    result = run(FakeModule(check_mode=True, pull="always"), client)
    assert result["changed"] is False and "converge_tool" not in [c[0] for c in client.calls]
    assert result["plan"]["pull"] is True


def test_a_stopped_tool_that_is_to_stay_stopped_is_pulled_with_start_false():
    client = FakeClient(existing=tool("exited"), plan=plan("start", pull=True, reason="container is exited"))
    result = run(FakeModule(pull="always", state="stopped"), client)
    verb, _body, _wait, start = client.calls[2]
    assert verb == "converge_tool" and start is False
    assert result["changed"] is False and result["tool"]["state"] == "exited"


def test_the_grace_is_passed_to_the_verbs():
    client = FakeClient(existing=tool(), plan=plan("unchanged"))
    run(FakeModule(state="restarted", stop_timeout=4), client)
    assert client.calls[-1] == ("tool_action", "restart", 4)


def test_the_agents_field_names_become_option_names():
    error = DtmaInvalid("DTMA agent answered HTTP 422: pullPolicy: image 'x' is not present on this host and pullPolicy "
                        "is never; load or pull it there first, or use pullPolicy missing", 422,
                        {"error": "image unavailable", "field": "pullPolicy"})
    with pytest.raises(Failed) as failed:
        run(FakeModule(pull="never"), FakeClient(existing=None, errors={"validate_tool": error}))
    fields = failed.value.args[0]
    assert "pull: image 'x' is not present on this host and pull is never" in fields["msg"]
    assert fields["status"] == 422 and fields["agent_error"] == "image unavailable" and fields["actions"] == []


def test_settle_out_of_range_fails_before_any_call():
    client = FakeClient()
    with pytest.raises(Failed) as failed:
        mod.ToolManager(FakeModule(settle=61), client)
    assert "settle must be between 0 and 60" in failed.value.args[0]["msg"] and client.calls == []
