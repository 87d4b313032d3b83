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
  - With O(fallback=ssh) (deprecated with the C(ssh_*) options; see the examples for the same request through the
    host's own Ansible connection), when the agent does not answer, the request goes over a real SSH connection to
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

# When the agent is down, run the same request through `dtma-agent exec` on the host, over the host's own Ansible
# connection (its user, key, port, jump host) with become: the host's policy decides and its sandbox runs the command,
# as the agent would. This replaces fallback=ssh and the deprecated ssh_* options.
- name: Disk usage, through the host's connection if the agent is down
  block:
    - name: Disk usage through the agent
      agentopia.dtma.dtma_exec:
        argv: [df, -h, /]
      delegate_to: localhost
      register: disk
  rescue:
    - name: Disk usage through dtma-agent exec on the host
      ansible.builtin.command:
        argv: [/opt/dtma/current/bin/dtma-agent, exec, --env-file, /etc/dtma/dtma.env]
        stdin: "{{ {'argv': ['df', '-h', '/'], 'timeout': 30000} | to_json }}"
      become: true
      register: disk_on_host
      changed_when: true
      # the answer is the agent's JSON (exit_code, stdout, stderr, or a refusal with rule and reason)
      failed_when: (disk_on_host.stdout | from_json).exit_code | default(-1) != 0

- name: Disk usage over the module's own SSH connection (deprecated, see the ssh_* options)
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

from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaBlocked, DtmaConnectionError, DtmaRateLimited
from ansible_collections.agentopia.dtma.plugins.module_utils._common import Manager, argument_spec
from ansible_collections.agentopia.dtma.plugins.module_utils._ssh import SshError, run_over_ssh, ssh_settings


def host_exec(params, request):
    """Run the request through `dtma-agent exec` on the host over SSH: the host's own policy, sandbox, Docker filter
    and audit trail decide and run it, exactly as the agent would. Returns the agent's JSON answer."""
    remote = "%s exec --env-file %s" % (shlex.quote(params["ssh_agent_path"]), shlex.quote(params["ssh_env_file"]))
    # by default the SSH read waits as long as the command may run, plus the time to connect
    settings = ssh_settings(params, command_timeout=params["command_timeout"] + params["ssh_connect_timeout"])
    answer = run_over_ssh(remote, stdin_data=json.dumps(request), **settings)
    try:
        return json.loads(answer["stdout"])
    except ValueError:
        raise SshError("%s did not answer JSON (exit %s): %s" % (params["ssh_agent_path"], answer["rc"],
                                                                 (answer["stderr"] or answer["stdout"])[-500:]))


class ExecManager(Manager):
    """One command: the agent's verdict (check mode) or its run, through the agent or, when it does not answer and
    fallback=ssh, through `dtma-agent exec` on the host."""

    STATE = None
    HANDLERS = {None: "execute"}

    def __init__(self, module, client=None):
        super(ExecManager, self).__init__(module, client)
        params = self.params
        self.request = {"command": params["command"]} if params["command"] is not None else {"argv": params["argv"]}
        self.request["timeout"] = params["command_timeout"] * 1000
        self.result.update(cmd=params["command"] if params["command"] is not None else shlex.join(params["argv"]),
                           transport="agent", policy_source="agent")

    def check_options(self):
        if not 1 <= self.params["command_timeout"] <= 300:
            self.fail("command_timeout must be between 1 and 300 seconds (the agent's limit)")

    def subject(self):
        return "the command"

    def describe(self, exc):
        return exc.message

    def ran(self, body, transport):
        self.result.update(changed=True, transport=transport, rc=body["exit_code"], stdout=body["stdout"],
                           stderr=body["stderr"], stdout_lines=body["stdout"].splitlines(),
                           stderr_lines=body["stderr"].splitlines(), duration_ms=body["duration_ms"],
                           truncated=body.get("truncated", False), timed_out=body.get("timed_out", False))

    def verdict(self, body, whose):
        """Check mode: the policy's verdict is the result; a command the real run would refuse fails now."""
        self.result.update(allowed=body["allowed"], rule=body["rule"], reason=body["reason"], changed=body["allowed"])
        if not body["allowed"]:
            self.fail("the %s command policy would block this (%s): %s" % (whose, body["rule"], body["reason"]))

    def execute(self):
        try:
            if self.check_mode:
                self.verdict(self.client.dry_run(self.request), "agent's")
            else:
                body = self.client.execute(self.request, self.params["command_timeout"])
                self.result.update(allowed=True, rule="allowed", reason="executed by the agent")
                self.ran(body, "agent")
        except DtmaBlocked as exc:
            self.result.update(allowed=False, rule=exc.body.get("rule"), reason=exc.body.get("reason"))
            self.fail("blocked by the agent's command policy (%s): %s" % (self.result["rule"], self.result["reason"]), exc)
        except DtmaRateLimited as exc:
            self.fail("the agent is running its maximum number of commands; retry in %ss" % (exc.retry_after or 1), exc)
        except DtmaConnectionError as exc:
            if self.params["fallback"] != "ssh":
                self.fail("%s; the command did not run (set fallback: ssh to use SSH when the agent is down)" % exc.message)
            self.over_ssh(exc)
        if not self.check_mode and (self.result["rc"] != 0 or self.result["timed_out"]):
            why = ("timed out after %ss" % self.params["command_timeout"] if self.result["timed_out"]
                   else "exited %s" % self.result["rc"])
            self.fail("the command %s" % why)

    def over_ssh(self, agent_error):
        self.result.update(transport="ssh", policy_source="host")
        try:
            body = host_exec(self.params, dict(self.request, dry_run=self.check_mode))
        except SshError as exc:
            self.fail("the agent did not answer (%s) and the SSH fallback failed: %s" % (agent_error.message, exc))
        if body.get("error") == "command blocked by policy":
            self.result.update(allowed=False, rule=body.get("rule"), reason=body.get("reason"))
            self.fail("blocked by the host's command policy (%s): %s; nothing ran" % (self.result["rule"], self.result["reason"]))
        if "exit_code" not in body and not body.get("dry_run"):
            self.fail("the SSH fallback could not run the command: %s: %s" % (body.get("error"), body.get("message")))
        if self.check_mode:
            self.verdict(body, "host's")
            return
        self.result.update(allowed=True, rule="allowed", reason="executed on the host by dtma-agent exec")
        self.ran(body, "ssh")


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
    ExecManager(module).run()


if __name__ == "__main__":
    main()
