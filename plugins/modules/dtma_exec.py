#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: dtma_exec
short_description: Run an operator command on a droplet through the DTMA agent, under its safety policy
version_added: 0.1.0
description:
  - Sends a command to the DTMA agent (C(POST /ssh/execute)), which checks it against its command safety
    policy and runs it. A blocked command fails the task with the policy rule and reason; nothing runs.
  - With O(fallback=ssh), when the agent does not answer, the command is checked against the same policy
    code on the controller and, only if it is allowed, run over a real SSH connection, in C(/) (where the policy
    resolved relative paths; the remote login shell must be POSIX). What runs is what the policy checked, a
    simple command as its argv, a compound one as C(/bin/bash -c) with a script regenerated from the checked
    parse tree (so the remote host needs bash). The result says which RV(transport) ran it.
  - Like M(ansible.builtin.command), a command that ran reports C(changed) and a non-zero exit code fails.
options:
  command:
    description:
      - A shell command line. Compound commands (pipes, C(&&), redirections) are approved node by node, and bash
        runs a script regenerated from the parse tree the policy checked, never the string as typed.
      - Exactly one of O(command) and O(argv) is required.
    type: str
  argv:
    description: The command as a list of arguments; it is never parsed by a shell.
    type: list
    elements: str
  command_timeout:
    description: Seconds the command may run; then its whole process group is killed and the task fails.
    type: int
    default: 30
  fallback:
    description:
      - What to do when the agent does not answer.
      - V(none) fails the task; V(ssh) runs the command over SSH (see the C(ssh_*) options) if the policy allows it.
    type: str
    choices: [none, ssh]
    default: none
extends_documentation_fragment:
  - agentopia.dtma.connection
  - agentopia.dtma.connection.ssh
  - agentopia.dtma.connection.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Only the policy verdict is returned (the agent's dry run, or the local policy when the agent is down
      and O(fallback=ssh)); nothing runs.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: A command that runs always reports C(changed), like M(ansible.builtin.command).
  platform:
    support: full
    platforms: posix
author:
  - Agentopia engineering (@agentopia)
'''

EXAMPLES = r'''
- name: Look at the last lines of a tool's log
  agentopia.dtma.dtma_exec:
    command: docker logs reasoning-server --tail 20
  delegate_to: localhost
  module_defaults:
    group/agentopia.dtma.dtma:
      url: "http://{{ ansible_host }}:30000"
      token: "{{ dtma_token }}"
  register: logs

- name: Disk usage, through SSH if the agent is down
  agentopia.dtma.dtma_exec:
    argv: [df, -h, /]
    fallback: ssh
    ssh_host: "{{ ansible_host }}"
    ssh_user: root
    ssh_key_file: ~/.ssh/droplets
  delegate_to: localhost
'''

RETURN = r'''
cmd:
  description: The command as sent.
  returned: always
  type: str
  sample: docker ps -a
rc:
  description: Exit code of the command (-15 or -9 when it was killed on timeout).
  returned: when it ran
  type: int
  sample: 0
stdout:
  description: Standard output (at most the agent's output cap).
  returned: when it ran
  type: str
stderr:
  description: Standard error.
  returned: when it ran
  type: str
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when it ran
  type: list
  elements: str
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when it ran
  type: list
  elements: str
duration_ms:
  description: How long the command ran, in milliseconds.
  returned: when it ran
  type: float
truncated:
  description: Whether stdout or stderr was cut at the agent's output cap.
  returned: when it ran through the agent
  type: bool
timed_out:
  description: Whether the command was killed because it outlived O(command_timeout).
  returned: when it ran
  type: bool
transport:
  description: What ran (or would run) the command, V(agent) or V(ssh).
  returned: always
  type: str
  sample: agent
allowed:
  description: The policy verdict.
  returned: always
  type: bool
rule:
  description: The policy rule that decided, for example C(allow.docker_read) or C(deny.fs_destruction).
  returned: always
  type: str
reason:
  description: The policy's reason, in words.
  returned: always
  type: str
policy_source:
  description: Whose policy decided, V(agent) (the policy the agent enforces) or V(local) (the same code on the controller, default policy).
  returned: always
  type: str
'''

import shlex

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaBlocked, DtmaConnectionError, DtmaError, DtmaRateLimited
from ansible_collections.agentopia.dtma.plugins.module_utils._common import argument_spec, client
from ansible_collections.agentopia.dtma.plugins.module_utils._policy import BASHLEX_IMPORT_ERROR, HAS_BASHLEX, PolicyContext, default_policy
from ansible_collections.agentopia.dtma.plugins.module_utils._ssh import SshError, run_over_ssh, ssh_settings


# The policy resolves relative paths against the working directory, so the SSH fallback runs every command
# where the local verdict assumed it runs, not in the login's home.
SSH_CWD = "/"


def ssh_command(run_argv):
    """The remote command line: in SSH_CWD, exec exactly the argv the policy approved (for a compound command,
    bash with the script regenerated from the checked parse tree), whatever the login shell is."""
    return "cd %s || exit 125\nexec %s" % (shlex.quote(SSH_CWD), shlex.join(run_argv))


def local_verdict(module, params):
    """The same policy code the agent enforces, run on the controller (the agent cannot be asked)."""
    if not HAS_BASHLEX:
        module.fail_json(msg=missing_required_lib("bashlex") + " (the SSH fallback checks commands against the policy locally)",
                         exception=BASHLEX_IMPORT_ERROR)
    policy, context = default_policy(), PolicyContext(cwd=SSH_CWD)
    verdict = (policy.check_command(params["command"], context) if params["command"] is not None
               else policy.check_argv(params["argv"], context))
    return dict(allowed=verdict.allowed, rule=verdict.rule, reason=verdict.reason, policy_source="local"), verdict.run_argv


def ran(result, body, transport):
    result.update(changed=True, transport=transport, rc=body["exit_code"], stdout=body["stdout"], stderr=body["stderr"],
                  stdout_lines=body["stdout"].splitlines(), stderr_lines=body["stderr"].splitlines(),
                  duration_ms=body["duration_ms"], truncated=body.get("truncated", False), timed_out=body.get("timed_out", False))
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            ssh=True,
            command=dict(type="str"),
            argv=dict(type="list", elements="str"),
            command_timeout=dict(type="int", default=30),
            fallback=dict(type="str", choices=["none", "ssh"], default="none"),
        ),
        mutually_exclusive=[("command", "argv")],
        required_one_of=[("command", "argv")],
        required_if=[("fallback", "ssh", ("ssh_host",))],
        supports_check_mode=True,
    )
    params = module.params
    if not 1 <= params["command_timeout"] <= 300:
        module.fail_json(msg="command_timeout must be between 1 and 300 seconds (the agent's limit)")
    cmd = params["command"] if params["command"] is not None else shlex.join(params["argv"])
    request = {"command": params["command"]} if params["command"] is not None else {"argv": params["argv"]}
    request["timeout"] = params["command_timeout"] * 1000
    result = dict(changed=False, cmd=cmd, transport="agent", policy_source="agent")
    api = client(module)
    # the HTTP answer comes after the command: give it the command's time on top of the connection timeout
    http_timeout = params["timeout"] + params["command_timeout"]

    try:
        if module.check_mode:
            verdict = api.post("ssh", "execute", json=dict(request, dry_run=True))
            result.update(allowed=verdict["allowed"], rule=verdict["rule"], reason=verdict["reason"], changed=verdict["allowed"])
            if not verdict["allowed"]:  # the real run would fail: say so now
                module.fail_json(msg="the agent's command policy would block this (%s): %s" % (verdict["rule"], verdict["reason"]), **result)
        else:
            _status, body = api.request("POST", ("ssh", "execute"), json=request, timeout=http_timeout)
            result.update(allowed=True, rule="allowed", reason="executed by the agent")
            ran(result, body, "agent")
    except DtmaBlocked as exc:
        result.update(allowed=False, rule=exc.body.get("rule"), reason=exc.body.get("reason"))
        module.fail_json(msg="blocked by the agent's command policy (%s): %s" % (result["rule"], result["reason"]), **result)
    except DtmaRateLimited as exc:
        module.fail_json(msg="the agent is running its maximum number of commands; retry in %ss" % (exc.retry_after or 1), **result)
    except DtmaConnectionError as exc:
        if params["fallback"] != "ssh":
            module.fail_json(msg="%s; the command did not run (set fallback: ssh to use SSH when the agent is down)" % exc.message, **result)
        checked, run_argv = local_verdict(module, params)
        result.update(checked, transport="ssh")
        if not result["allowed"]:
            module.fail_json(msg="blocked by the command policy (%s): %s; nothing was sent over SSH" % (result["rule"], result["reason"]),
                             **result)
        if module.check_mode:
            result["changed"] = True
            module.exit_json(**result)
        try:
            settings = ssh_settings(params)
            settings["command_timeout"] = params["command_timeout"]
            body = run_over_ssh(ssh_command(run_argv), **settings)
        except SshError as ssh_exc:
            module.fail_json(msg="the agent did not answer (%s) and the SSH fallback failed: %s" % (exc.message, ssh_exc), **result)
        ran(result, dict(exit_code=body["rc"], stdout=body["stdout"], stderr=body["stderr"], duration_ms=body["duration_ms"]), "ssh")
    except DtmaError as exc:
        module.fail_json(msg=exc.message, status=exc.status, **result)

    if not module.check_mode and (result["rc"] != 0 or result["timed_out"]):
        why = "timed out after %ss" % params["command_timeout"] if result["timed_out"] else "exited %s" % result["rc"]
        module.fail_json(msg="the command %s" % why, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
