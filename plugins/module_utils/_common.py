# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection. It is not a public API and may change without notice.
"""What every module shares: the connection options (documented once in the agentopia.dtma.connection fragment), the
client they build, and the Manager base each module runs in (one fail(), dispatch on the state)."""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.agentopia.dtma.plugins.module_utils._api import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    DtmaClient,
    DtmaConnectionError,
    DtmaError,
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

# The modules' own SSH connection, deprecated: a playbook reaches the host through the host's own Ansible connection
# (its user, key, port, jump host, become) in a block/rescue, as playbooks/restart.yml and redeploy.yml do.
SSH_DEPRECATION = dict(removed_in_version="1.0.0", removed_from_collection="agentopia.dtma")
SSH_ARGS = dict(
    ssh_host=dict(type="str", **SSH_DEPRECATION),
    ssh_port=dict(type="int", default=22, **SSH_DEPRECATION),
    ssh_user=dict(type="str", default="root", **SSH_DEPRECATION),
    ssh_key_file=dict(type="path", **SSH_DEPRECATION),
    ssh_host_key_checking=dict(type="bool", default=True, **SSH_DEPRECATION),
    ssh_known_hosts_file=dict(type="path", **SSH_DEPRECATION),
    ssh_connect_timeout=dict(type="int", default=10, **SSH_DEPRECATION),
    # no default: each module has its own (ssh_settings())
    ssh_command_timeout=dict(type="int", **SSH_DEPRECATION),
)


# How a tool or an MCP server gets its image: the options and the agent's fields they become.
IMAGE_ARGS = dict(
    pull=dict(type="str", default="missing", choices=["missing", "always", "never"]),
    registry_auth=dict(type="dict", options=dict(
        username=dict(type="str", required=True),
        password=dict(type="str", required=True, no_log=True),
        serveraddress=dict(type="str"),
    )),
)


def image_fields(options):
    """`pull` and `registry_auth` as the agent's pullPolicy and registryAuth. The agent's default policy (missing)
    is not sent, so an older agent still takes the spec."""
    fields = {}
    if options.get("pull") not in (None, "missing"):
        fields["pullPolicy"] = options["pull"]
    auth = dict((k, v) for k, v in (options.get("registry_auth") or {}).items() if v not in (None, ""))
    if auth:
        fields["registryAuth"] = auth
    return fields


def argument_spec(ssh=False, **module_args):
    spec = dict(CONNECTION_ARGS)
    if ssh:
        spec.update(SSH_ARGS)
    spec.update(module_args)
    return spec


def client(module, raise_url_error=False, fail=None):
    """The agent client from the module's connection options, or a failure (through `fail`, by default the module's
    fail_json) saying what is missing or wrong.

    A URL the client refuses (no http:// or https://) fails the module, or with `raise_url_error` raises the
    DtmaUrlError (for dtma_info, whose health section reports it instead of failing)."""
    if fail is None:
        def fail(msg, **fields):
            module.fail_json(msg=msg, **fields)
    if not HAS_REQUESTS:
        fail(missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    params = module.params
    if not params["url"]:
        fail("no agent URL: set the url option (e.g. http://{{ ansible_host }}:30000) or DTMA_URL")
    if not params["token"]:
        fail("no agent token: set the token option or DTMA_BEARER_TOKEN")
    try:
        return DtmaClient(params["url"], params["token"], timeout=params["timeout"],
                          validate_certs=params["validate_certs"], ca_path=params["ca_path"] or None)
    except DtmaUrlError as exc:
        if raise_url_error:
            raise
        fail(exc.message)
    return None


def failure_fields(exc):
    """What the agent said about a failed call, as a module's failure returns it: the HTTP status, the agent's error,
    the fields it named and, for a refusal by a rate limit, retry_after (whole seconds)."""
    fields = {"status": exc.status}
    for key, answer_key in (("agent_error", "error"), ("fields", "fields")):
        if exc.body.get(answer_key):
            fields[key] = exc.body[answer_key]
    if getattr(exc, "retry_after", None) is not None:
        fields["retry_after"] = exc.retry_after
    return fields


class Manager(object):
    """The shape every module of the collection runs in (after community.docker's managers): it holds the result it
    builds up, the agent client, a single fail(), and dispatches on its state option.

    A subclass sets STATE (the option that says what to do, or None for a module that does one thing) and has one
    method per value of it; HANDLERS maps a value to another method's name (None to the method of a stateless module).
    subject() names what the task is about in messages. run() calls the method, turns the agent's typed errors that
    the method did not handle into a failure, and exits with the result.
    """

    STATE = "state"
    HANDLERS = {}

    def __init__(self, module, client=None):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.result = {"changed": False}
        self.check_options()
        self.client = client if client is not None else self.connect()

    # -- hooks ----------------------------------------------------------------------------------------------------

    def check_options(self):
        """Fail for option values argument_spec cannot express (ranges), before anything is asked of the agent."""

    def connect(self):
        """The agent client from the connection options, or a failure saying what is missing or wrong."""
        return client(self.module, fail=self.fail)

    def subject(self):
        """What the task is about, for messages (for example "group acct-42")."""
        return "the DTMA agent"

    def describe(self, exc):
        """The message for an agent error the state's method did not handle."""
        state = " (%s=%s)" % (self.STATE, self.params[self.STATE]) if self.STATE else ""
        return "%s%s: %s" % (self.subject(), state, exc.message)

    # -- the one way out --------------------------------------------------------------------------------------------

    def fail(self, msg, exc=None, **fields):
        """Fail the task: `msg`, the result so far, what the agent said about `exc` (failure_fields) and `fields`
        (which win: a caller may map the agent's fields to option names)."""
        out = dict(self.result)
        if exc is not None:
            out.update(failure_fields(exc))
        out.update(fields)
        self.module.fail_json(msg=msg, **out)

    def exit(self, **fields):
        self.result.update(fields)
        self.module.exit_json(**self.result)

    # -- dispatch -----------------------------------------------------------------------------------------------------

    def handler(self):
        value = self.params[self.STATE] if self.STATE else None
        return getattr(self, self.HANDLERS.get(value, value))

    def run(self):
        try:
            self.handler()()
        except DtmaConnectionError as exc:
            self.fail("could not reach the DTMA agent for %s: %s. Check the url option and that the agent runs and is "
                      "reachable from the controller." % (self.subject(), exc.message), exc)
        except DtmaError as exc:
            self.fail(self.describe(exc), exc)
        self.exit()
