# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A module's Manager run in the controller's worker: option validation, environment fallbacks from the task's
environment, check mode and no_log masking behave as they do for the module shipped to a host."""

from __future__ import annotations

import os

import pytest

from ansible_collections.agentopia.dtma.plugins.module_utils._common import Manager, argument_spec
from ansible_collections.agentopia.dtma.plugins.plugin_utils._inprocess import run_manager

TOKEN = "unit-test-token-0123456789abcdef"
SPEC = argument_spec(name=dict(type="str", required=True), count=dict(type="int", default=1))


class FakeTask(object):
    def __init__(self, args, check_mode=False):
        self.args = args
        self.check_mode = check_mode


class FakeAction(object):
    """The two things run_manager uses of an action plugin: its task and the task's environment."""

    def __init__(self, args, environment=None, check_mode=False):
        self._task = FakeTask(args, check_mode)
        self.environment = environment or {}

    def _compute_environment_string(self, raw_environment_out):
        raw_environment_out.update(self.environment)


class Echo(Manager):
    """Returns what it was given, the token included (which the result must not show)."""

    STATE = None
    HANDLERS = {None: "echo"}
    seen_env = None

    def connect(self):
        return None

    def echo(self):
        Echo.seen_env = os.environ.get("DTMA_URL")
        self.result.update(params=dict(self.params), check_mode=self.check_mode, said=self.params["token"])
        if self.params["count"] < 0:
            self.fail("count must not be negative, not %s" % self.params["count"])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("DTMA_URL", "DTMA_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_options_are_validated_and_defaulted():
    result = run_manager(FakeAction({"name": "a", "url": "http://h:1", "token": TOKEN}), Echo, SPEC)
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["params"]["count"] == 1 and result["params"]["timeout"] == 30


@pytest.mark.parametrize("args, named", [({"url": "http://h:1"}, "name"), ({"name": "a", "count": "many"}, "count"),
                                         ({"name": "a", "colour": "red"}, "colour")])
def test_bad_options_fail_naming_the_option(args, named):
    result = run_manager(FakeAction(args), Echo, SPEC)
    assert result["failed"] is True
    assert named in result["msg"]


def test_the_task_environment_feeds_the_fallbacks_and_is_undone():
    env = {"DTMA_URL": "http://from-task-env:30000", "DTMA_BEARER_TOKEN": TOKEN}
    result = run_manager(FakeAction({"name": "a"}, environment=env), Echo, SPEC)
    assert result["params"]["url"] == "http://from-task-env:30000"
    assert Echo.seen_env == "http://from-task-env:30000"
    assert "DTMA_URL" not in os.environ and "DTMA_BEARER_TOKEN" not in os.environ


def test_check_mode_reaches_the_manager():
    result = run_manager(FakeAction({"name": "a", "token": TOKEN}, check_mode=True), Echo, SPEC)
    assert result["check_mode"] is True


def test_no_log_values_are_masked_in_results_and_failures():
    result = run_manager(FakeAction({"name": "a", "token": TOKEN}), Echo, SPEC)
    assert TOKEN not in repr(result)
    assert result["said"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"  # what a module shows too
    failed = run_manager(FakeAction({"name": "a", "token": TOKEN, "count": -1}), Echo, SPEC)
    assert failed["failed"] is True and "count must not be negative, not -1" in failed["msg"]
    assert TOKEN not in repr(failed)
