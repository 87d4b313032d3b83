# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection. It is not a public API and may change without notice.
"""Runs a module's Manager inside the controller's worker process (from an action plugin) instead of shipping the
module to a host: the modules only talk HTTP to an agent, so the module round trip (AnsiballZ, a new Python, its
imports) is pure overhead. The options are validated by the module's own argument_spec, with the same environment
fallbacks, check mode and no_log masking a module gets."""

from __future__ import annotations

import os
from contextlib import contextmanager

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.utils.display import Display

display = Display()


class ModuleExit(Exception):
    """exit_json/fail_json of an InProcessModule: ends the Manager's run with its result."""

    def __init__(self, result):
        super(ModuleExit, self).__init__(result.get("msg", ""))
        self.result = result


class InProcessModule(object):
    """What a Manager uses of AnsibleModule: params, check_mode, fail_json, exit_json, warn."""

    def __init__(self, argument_spec, args, check_mode):
        validated = ArgumentSpecValidator(argument_spec).validate(args)
        self.no_log_values = set(validated._no_log_values)
        for deprecation in validated._deprecations:
            display.deprecated(deprecation["msg"], version=deprecation.get("version"), date=deprecation.get("date"),
                               collection_name=deprecation.get("collection_name"))
        if validated.error_messages:
            raise ModuleExit({"failed": True, "msg": "; ".join(validated.error_messages)})
        self.params = validated.validated_parameters
        self.check_mode = check_mode

    def warn(self, msg):
        display.warning(msg)

    def fail_json(self, msg, **fields):
        fields.update(failed=True, msg=msg)
        raise ModuleExit(fields)

    def exit_json(self, **fields):
        raise ModuleExit(fields)


@contextmanager
def environment(extra):
    """The task's `environment:` over the controller's, as a module delegated to localhost would see them (env
    fallbacks such as DTMA_URL read it). A worker process runs one task at a time, so this is not shared."""
    saved = dict(os.environ)
    os.environ.update(dict((k, str(v)) for k, v in extra.items()))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_manager(action, manager_class, argument_spec):
    """Run `manager_class` for the action plugin `action`'s task; return what the module would have returned."""
    extra = {}
    action._compute_environment_string(extra)
    module = None
    with environment(extra):
        try:
            module = InProcessModule(argument_spec, action._task.args, check_mode=bool(action._task.check_mode))
            manager_class(module).run()
            outcome = {"failed": True, "msg": "the module ended without a result"}
        except ModuleExit as done:
            outcome = done.result
    outcome.setdefault("changed", False)
    if module is not None:
        outcome = remove_values(outcome, module.no_log_values)
    return outcome
