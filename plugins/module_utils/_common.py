# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection. It is not a public API and may change without notice.
"""The connection options every module shares (documented once in the agentopia.dtma.connection fragment)."""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.agentopia.dtma.plugins.module_utils._api import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    DtmaClient,
    DtmaUrlError,
)

# Every option falls back to an environment variable (AWX's credential type injects DTMA_URL, DTMA_BEARER_TOKEN and
# DTMA_CA_PATH); a value given to the task wins over the environment, the environment over the default.
CONNECTION_ARGS = dict(
    url=dict(type="str", fallback=(env_fallback, ["DTMA_URL"])),
    token=dict(type="str", no_log=True, fallback=(env_fallback, ["DTMA_BEARER_TOKEN"])),
    timeout=dict(type="int", default=30, fallback=(env_fallback, ["DTMA_TIMEOUT"])),
    validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["DTMA_VALIDATE_CERTS"])),
    ca_path=dict(type="path", fallback=(env_fallback, ["DTMA_CA_PATH"])),
)

SSH_ARGS = dict(
    ssh_host=dict(type="str"),
    ssh_port=dict(type="int", default=22),
    ssh_user=dict(type="str", default="root"),
    ssh_key_file=dict(type="path"),
    ssh_host_key_checking=dict(type="bool", default=True),
    ssh_known_hosts_file=dict(type="path"),
    ssh_connect_timeout=dict(type="int", default=10),
    ssh_command_timeout=dict(type="int", default=60),
)


def argument_spec(ssh=False, **module_args):
    spec = dict(CONNECTION_ARGS)
    if ssh:
        spec.update(SSH_ARGS)
    spec.update(module_args)
    return spec


def client(module, raise_url_error=False):
    """The agent client from the module's connection options, or fail_json with what is missing or wrong.

    A URL the client refuses (no http:// or https://) fails the module, or with `raise_url_error` raises the
    DtmaUrlError (for dtma_info, whose health section reports it instead of failing)."""
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    params = module.params
    if not params["url"]:
        module.fail_json(msg="no agent URL: set the url option (e.g. http://{{ ansible_host }}:30000) or DTMA_URL")
    if not params["token"]:
        module.fail_json(msg="no agent token: set the token option or DTMA_BEARER_TOKEN")
    try:
        return DtmaClient(params["url"], params["token"], timeout=params["timeout"],
                          validate_certs=params["validate_certs"], ca_path=params["ca_path"] or None)
    except DtmaUrlError as exc:
        if raise_url_error:
            raise
        module.fail_json(msg=exc.message)


def fail_json(module, msg, exc=None, **fields):
    """fail_json with what the agent said about a failed call: HTTP status, its error and the fields it named
    (unless the caller passes its own, e.g. fields mapped to option names)."""
    if exc is not None:
        fields.setdefault("status", exc.status)
        for key, answer_key in (("agent_error", "error"), ("fields", "fields")):
            if exc.body.get(answer_key):
                fields.setdefault(key, exc.body[answer_key])
    module.fail_json(msg=msg, **fields)
