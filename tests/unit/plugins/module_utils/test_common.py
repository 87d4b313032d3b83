# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared connection options: which of task option, environment and default wins, and the client they build."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentopia.dtma.tests.unit.plugins.module_args import patch_module_args

from ansible_collections.agentopia.dtma.plugins.module_utils import _common
from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaUrlError

TOKEN = "unit-test-token-0123456789abcdef"
ENV = ("DTMA_URL", "DTMA_BEARER_TOKEN", "DTMA_TIMEOUT", "DTMA_VALIDATE_CERTS", "DTMA_CA_PATH")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def module_with(args):
    with patch_module_args(args):
        return AnsibleModule(argument_spec=_common.argument_spec())


def client_failure(capsys, args):
    """_common.client() of a module with these args, expecting fail_json; return its JSON (the module exits while its
    args are patched in: fail_json needs them)."""
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=_common.argument_spec())
        with pytest.raises(SystemExit) as info:
            _common.client(module)
    assert info.value.code == 1
    return json.loads(capsys.readouterr().out)


def test_defaults_without_environment():
    params = module_with({}).params
    assert (params["url"], params["token"], params["timeout"], params["validate_certs"], params["ca_path"]) == (
        None, None, 30, True, None)


def test_every_connection_option_falls_back_to_its_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("DTMA_URL", "https://agent.example:30000")
    monkeypatch.setenv("DTMA_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("DTMA_TIMEOUT", "7")
    monkeypatch.setenv("DTMA_VALIDATE_CERTS", "false")
    monkeypatch.setenv("DTMA_CA_PATH", str(tmp_path / "ca.pem"))
    params = module_with({}).params
    assert params["url"] == "https://agent.example:30000" and params["token"] == TOKEN
    assert params["timeout"] == 7 and params["validate_certs"] is False and params["ca_path"] == str(tmp_path / "ca.pem")


def test_task_options_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("DTMA_URL", "http://from-env:30000")
    monkeypatch.setenv("DTMA_BEARER_TOKEN", "env-token-0123456789abcdefgh")
    monkeypatch.setenv("DTMA_TIMEOUT", "7")
    monkeypatch.setenv("DTMA_VALIDATE_CERTS", "false")
    monkeypatch.setenv("DTMA_CA_PATH", "/env/ca.pem")
    params = module_with({"url": "http://from-task:30000", "token": TOKEN, "timeout": 5, "validate_certs": True,
                          "ca_path": "/task/ca.pem"}).params
    assert (params["url"], params["token"], params["timeout"], params["validate_certs"], params["ca_path"]) == (
        "http://from-task:30000", TOKEN, 5, True, "/task/ca.pem")


def test_the_client_gets_the_options_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DTMA_URL", "https://agent.example:30000")
    monkeypatch.setenv("DTMA_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("DTMA_TIMEOUT", "9")
    monkeypatch.setenv("DTMA_CA_PATH", str(tmp_path / "ca.pem"))
    client = _common.client(module_with({}))
    assert client.base_url == "https://agent.example:30000" and client.timeout == 9
    assert client.session.verify == str(tmp_path / "ca.pem")
    assert client.session.headers["Authorization"] == "Bearer " + TOKEN


def test_an_empty_ca_path_means_the_system_store(monkeypatch):
    """AWX injects DTMA_CA_PATH empty when the credential has no CA certificate."""
    monkeypatch.setenv("DTMA_CA_PATH", "")
    client = _common.client(module_with({"url": "https://agent.example", "token": TOKEN}))
    assert client.session.verify is True


def test_a_url_without_scheme_fails_the_module_with_the_reason(capsys):
    result = client_failure(capsys, {"url": "127.0.0.1:30000", "token": TOKEN})
    assert result["failed"] is True
    assert "url option (or DTMA_URL) must start with http:// or https://, for example http://127.0.0.1:30000" in result["msg"]


def test_raise_url_error_hands_the_error_to_the_caller():
    module = module_with({"url": "127.0.0.1:30000", "token": TOKEN})
    with pytest.raises(DtmaUrlError):
        _common.client(module, raise_url_error=True)


@pytest.mark.parametrize("args, missing", [({"token": TOKEN}, "no agent URL"), ({"url": "http://a:1"}, "no agent token")])
def test_missing_url_or_token_fails_saying_which(capsys, args, missing):
    assert missing in client_failure(capsys, args)["msg"]


# --- the Manager base: one fail(), dispatch on the state -----------------------------------------------------------

class Failed(Exception):
    pass


class Exited(Exception):
    pass


class FakeModule(object):
    def __init__(self, **params):
        self.params = params
        self.check_mode = False

    def fail_json(self, **fields):
        raise Failed(fields)

    def exit_json(self, **fields):
        raise Exited(fields)


class Things(_common.Manager):
    HANDLERS = {"restarted": "present"}

    def subject(self):
        return "thing %s" % self.params["name"]

    def present(self):
        self.result["changed"] = True
        self.result["seen"] = self.params["state"]

    def absent(self):
        self.result["removed"] = ["x"]
        raise self.params["raise"]


def outcome(kind, **params):
    with pytest.raises(kind) as info:
        Things(FakeModule(**params), client=object()).run()
    return info.value.args[0]


def test_run_dispatches_on_the_state_and_exits_with_the_result():
    assert outcome(Exited, name="a", state="present") == {"changed": True, "seen": "present"}
    assert outcome(Exited, name="a", state="restarted") == {"changed": True, "seen": "restarted"}  # HANDLERS


def test_an_agent_error_fails_with_the_result_so_far_and_what_the_agent_said():
    from ansible_collections.agentopia.dtma.plugins.module_utils._api import error_for
    exc = error_for(429, {"error": "restart limit", "message": "a was restarted 3 times", "fields": ["x"]}, "12")
    fields = outcome(Failed, name="a", state="absent", **{"raise": exc})
    assert fields["msg"] == "thing a (state=absent): DTMA agent answered HTTP 429: a was restarted 3 times"
    assert fields["changed"] is False and fields["removed"] == ["x"]
    assert (fields["status"], fields["agent_error"], fields["fields"], fields["retry_after"]) == (429, "restart limit", ["x"], 12)


def test_an_agent_that_does_not_answer_fails_saying_so():
    from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaConnectionError
    fields = outcome(Failed, name="a", state="absent", **{"raise": DtmaConnectionError("the DTMA agent at x did not answer")})
    assert fields["msg"].startswith("could not reach the DTMA agent for thing a: the DTMA agent at x did not answer.")
    assert fields["status"] is None and "retry_after" not in fields


def test_fail_fields_given_by_the_caller_win():
    from ansible_collections.agentopia.dtma.plugins.module_utils._api import error_for
    manager = Things(FakeModule(name="a", state="present"), client=object())
    with pytest.raises(Failed) as info:
        manager.fail("refused", error_for(422, {"fields": [{"field": "servers.0.image"}]}), fields=[{"option": "servers[0].image"}])
    assert info.value.args[0]["fields"] == [{"option": "servers[0].image"}] and info.value.args[0]["status"] == 422


def test_the_manager_connects_through_the_one_fail(capsys):
    with patch_module_args({"url": "127.0.0.1:30000", "token": TOKEN}):
        module = AnsibleModule(argument_spec=_common.argument_spec(name=dict(type="str"), state=dict(type="str")))
        with pytest.raises(SystemExit):
            Things(module)
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and result["changed"] is False and "must start with http://" in result["msg"]
