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
  - With O(fallback=ssh), when the agent does not answer, the request goes over a real SSH connection to
    C(dtma-agent exec) on the host (O(ssh_agent_path)), which does what the agent would do. It checks the command
    against the policy the host uses (its C(DTMA_POLICY_FILE), read from O(ssh_env_file)) and runs it in the same
    sandbox, with the same Docker filter and audit trail. The SSH user must be able to read that file and reach the
    sandbox launcher (root, or a member of the agent's group). The result says which RV(transport) ran it.
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
    description: Seconds the command may run; then its whole sandbox (every process it started) is killed and the task fails.
    type: int
    default: 30
  ssh_agent_path:
    description: With O(fallback=ssh), the C(dtma-agent) program on the host.
    type: str
    default: /opt/dtma/current/bin/dtma-agent
  ssh_env_file:
    description: With O(fallback=ssh), the agent's environment file on the host (its policy, sandbox and log settings).
    type: str
    default: /etc/dtma/dtma.env
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
    details: Only the policy verdict is returned (the agent's dry run, or the host's through C(dtma-agent exec) when
      the agent is down and O(fallback=ssh)); nothing runs.
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
  description: Whose policy decided, V(agent) (the running agent) or V(host) (C(dtma-agent exec) on the host, over SSH, with the host's policy).
  returned: always
  type: str
'''

import json
import shlex

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaBlocked, DtmaConnectionError, DtmaError, DtmaRateLimited
from ansible_collections.agentopia.dtma.plugins.module_utils._common import argument_spec, client
from ansible_collections.agentopia.dtma.plugins.module_utils._ssh import SshError, run_over_ssh, ssh_settings


def host_exec(params, request):
    """Run the request through `dtma-agent exec` on the host over SSH: the host's own policy, sandbox, Docker filter
    and audit trail decide and run it, exactly as the agent would. Returns the agent's JSON answer."""
    remote = "%s exec --env-file %s" % (shlex.quote(params["ssh_agent_path"]), shlex.quote(params["ssh_env_file"]))
    settings = ssh_settings(params)
    settings["command_timeout"] = params["command_timeout"] + settings["connect_timeout"]
    answer = run_over_ssh(remote, stdin_data=json.dumps(request), **settings)
    try:
        return json.loads(answer["stdout"])
    except ValueError:
        raise SshError("%s did not answer JSON (exit %s): %s" % (params["ssh_agent_path"], answer["rc"],
                                                                 (answer["stderr"] or answer["stdout"])[-500:]))


def ran(result, body, transport):
    result.update(changed=True, transport=transport, rc=body["exit_code"], stdout=body["stdout"], stderr=body["stderr"],
                  stdout_lines=body["stdout"].splitlines(), stderr_lines=body["stderr"].splitlines(),
                  duration_ms=body["duration_ms"], truncated=body.get("truncated", False), timed_out=body.get("timed_out", False))
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            ssh=True,
            ssh_agent_path=dict(type="str", default="/opt/dtma/current/bin/dtma-agent"),
            ssh_env_file=dict(type="str", default="/etc/dtma/dtma.env"),
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
        result.update(transport="ssh", policy_source="host")
        try:
            body = host_exec(params, dict(request, dry_run=module.check_mode))
        except SshError as ssh_exc:
            module.fail_json(msg="the agent did not answer (%s) and the SSH fallback failed: %s" % (exc.message, ssh_exc), **result)
        if body.get("error") == "command blocked by policy":
            result.update(allowed=False, rule=body.get("rule"), reason=body.get("reason"))
            module.fail_json(msg="blocked by the host's command policy (%s): %s; nothing ran" % (result["rule"], result["reason"]),
                             **result)
        if "exit_code" not in body and not body.get("dry_run"):
            module.fail_json(msg="the SSH fallback could not run the command: %s: %s" % (body.get("error"), body.get("message")),
                             **result)
        if module.check_mode:
            result.update(allowed=body["allowed"], rule=body["rule"], reason=body["reason"], changed=body["allowed"])
            if not body["allowed"]:
                module.fail_json(msg="the host's command policy would block this (%s): %s" % (body["rule"], body["reason"]), **result)
            module.exit_json(**result)
        result.update(allowed=True, rule="allowed", reason="executed on the host by dtma-agent exec")
        ran(result, body, "ssh")
    except DtmaError as exc:
        module.fail_json(msg=exc.message, status=exc.status, **result)

    if not module.check_mode and (result["rc"] != 0 or result["timed_out"]):
        why = "timed out after %ss" % params["command_timeout"] if result["timed_out"] else "exited %s" % result["rc"]
        module.fail_json(msg="the command %s" % why, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
