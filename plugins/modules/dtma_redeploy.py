#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: dtma_redeploy
short_description: Restart the DTMA agent, or switch it to another installed release, and prove it came back
version_added: 0.1.0
description:
  - V(restart) asks the agent to exit (C(POST /restart)); its service manager starts it again.
  - V(redeploy) asks the agent to switch C(DTMA_HOME/current) to C(releases/<version>) (C(POST /redeploy)); the agent
    checks that the release's C(bin/dtma-agent --version) runs, switches atomically (the old target becomes
    C(previous)) and exits so that its service manager starts the new release. A release that is already current
    is not a change and nothing is restarted.
  - Then the module polls C(GET /health) until an agent process with a different C(boot_id) answers, within
    O(wait_timeout). The new C(boot_id) is the proof that a new process runs; the reported C(version) (the agent's
    package version, which need not equal the release directory's name) is returned next to it.
  - V(restart) with O(ssh_host) given (deprecated, like every C(ssh_*) option) falls back to SSH when the agent
    does not answer C(GET /health), or does not come back after C(POST /restart) within O(wait_timeout); it runs
    C(systemctl restart SERVICE) over SSH and waits for the agent again. RV(transport) says which one restarted it.
  - When a redeployed agent does not come back and O(rollback) is true, the module rolls back to the previous
    release - through the API (C(POST /redeploy) with version V(previous)) if an agent still answers, otherwise
    (with the deprecated O(ssh_host)) over SSH with a fixed command that swaps C(HOME/current) and C(HOME/previous)
    (each replaced atomically with C(ln -sfn) and C(mv -Tf), as the API rollback does, so C(previous) names the
    failed release) and runs C(systemctl restart SERVICE), paths from O(dtma_home) and O(service_name) - waits for
    the agent again, and fails, saying whether the rollback worked.
  - Without O(ssh_host), a playbook does the fallback over the host's own Ansible connection (its user, key, port,
    jump host, C(become)) in a C(rescue), as C(playbooks/restart.yml) and C(playbooks/redeploy.yml) do. After a
    failed restart that has no RV(status) (the agent did not answer), restart the service; after a failed redeploy
    with RV(rolled_back=false), swap C(current) and C(previous) back and restart the service; then wait for a new
    C(boot_id) with M(agentopia.dtma.dtma_info).
options:
  mode:
    description: V(restart) the agent, or V(redeploy) it to O(version).
    type: str
    required: true
    choices: [restart, redeploy]
  version:
    description:
      - The release to switch to (a directory under C(DTMA_HOME/releases)); V(previous) rolls back. Required for
        O(mode=redeploy).
    type: str
  wait_timeout:
    description: Seconds to wait for a new agent process to answer C(GET /health) (after the switch, and again after a rollback).
    type: int
    default: 60
  rollback:
    description: Roll back to the previous release when a redeployed agent does not come back within O(wait_timeout).
    type: bool
    default: true
  dtma_home:
    description:
      - The agent's C(DTMA_HOME) on the managed host, used only by the SSH rollback.
    type: path
    default: /opt/dtma
  service_name:
    description: The agent's systemd service, restarted by the SSH rollback and the SSH restart.
    type: str
    default: dtma
extends_documentation_fragment:
  - agentopia.dtma.connection
  - agentopia.dtma.connection.ssh
  - agentopia.dtma.connection.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Only C(GET /health) is called; nothing is restarted or switched.
      - A restart is predicted as a change. A redeploy is predicted as a change unless the agent already reports
        O(version) as its version; since the release directory name may differ from the package version, the
        prediction can report a change the real run would not make.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
  idempotent:
    support: partial
    details: A redeploy to the release that is already current changes nothing; a restart always restarts.
notes:
  - The SSH rollback needs O(ssh_host) (and usually O(ssh_key_file)) and the paramiko library; without them a
    redeployed agent that does not answer is left as it is, and the module fails with RV(rolled_back=false).
  - The agent must run under a service manager that starts it again when it exits (the C(agentopia.dtma.dtma)
    role installs it as a systemd service with C(Restart=always)).
author:
  - Agentopia engineering (@agentopia)
'''

EXAMPLES = r'''
- name: Restart the agent and wait until it answers again
  agentopia.dtma.dtma_redeploy:
    mode: restart
  delegate_to: localhost
  module_defaults:
    group/agentopia.dtma.dtma:
      url: "http://{{ ansible_host }}:30000"
      token: "{{ dtma_token }}"

# When the agent does not answer, restart its service over the host's own connection (its user, key, port, jump
# host) with become, then wait for a new agent process; playbooks/restart.yml does this (and redeploy.yml the rollback)
- name: Restart the agent, over the host's connection if it does not answer
  block:
    - name: Restart the agent through its API
      agentopia.dtma.dtma_redeploy:
        mode: restart
        timeout: 5
      delegate_to: localhost
      register: restart
  rescue:
    - name: Fail when the agent answered with an error (a wrong token is not fixed by a restart)
      ansible.builtin.fail:
        msg: "{{ restart.msg }}"
      when: restart.status | default(none) is not none
    - name: Restart the service on the host
      ansible.builtin.systemd_service:
        name: dtma
        state: restarted
      become: true
    - name: Wait for a new agent process
      agentopia.dtma.dtma_info:
        gather: [health]
      delegate_to: localhost
      register: info
      until: info.health.agent.boot_id | default('') not in ['', restart.before.boot_id | default('')]
      retries: 30
      delay: 2

- name: Switch to release 1.4.0, rolling back through the API if it does not come up
  agentopia.dtma.dtma_redeploy:
    mode: redeploy
    version: 1.4.0
    wait_timeout: 90
  delegate_to: localhost
'''

RETURN = r'''
before:
  description: The agent before the task, from C(GET /health).
  returned: always
  type: dict
  sample: {boot_id: 5b0c7e0e8f0a4c38a1e4d2a0b6f1c9d2, version: 0.1.0, status: ok}
  contains:
    boot_id:
      description: Identifies the agent process; a new process has a new one.
      type: str
    version:
      description: The agent's package version.
      type: str
    status:
      description: V(ok), or V(degraded) when the agent cannot reach Docker.
      type: str
after:
  description: The agent after the task (the new process), from C(GET /health); empty when nothing answered.
  returned: always
  type: dict
  sample: {boot_id: 9d1f2e3c4b5a69788796a5b4c3d2e1f0, version: 0.1.1, status: ok}
release:
  description: The agent's account of the release switch (O(mode=redeploy)); in check mode, only the requested version.
  returned: when O(mode=redeploy)
  type: dict
  sample: {changed: true, version: 1.4.0, current: 1.4.0, previous: 1.3.2, reported_version: dtma-agent 0.1.1}
steps:
  description: Each step taken, in order, with when it started, how long it took and what came of it.
  returned: always
  type: list
  elements: dict
  sample:
    - {step: read health, started: "2026-01-01T00:00:00.000Z", duration_ms: 3.2, result: "boot_id 5b0c7e0e, version 0.1.0"}
    - {step: request redeploy, started: "2026-01-01T00:00:00.004Z", duration_ms: 41.7, result: switched to release 1.4.0; restarting}
    - {step: wait for a new agent process, started: "2026-01-01T00:00:00.046Z", duration_ms: 1830.5, result: "boot_id 9d1f2e3c"}
transport:
  description: What restarted the agent with O(mode=restart), V(api) (C(POST /restart)) or V(ssh) (C(systemctl restart)).
  returned: when O(mode=restart) and the agent was restarted
  type: str
  sample: api
status:
  description:
    - The HTTP status of the agent's answer to the request that failed; null when the agent did not answer (a
      fallback can help), a number when it answered with an error (a wrong token, a refusal).
  returned: on failure of a request to the agent
  type: int
  sample: null
rolled_back:
  description:
    - Whether a rollback was done (only when the task failed). V(false) after a switch whose agent did not come
      back and that could not be rolled back (no agent answers and no O(ssh_host)), or with O(rollback=false).
  returned: on failure after a redeploy
  type: bool
'''

import posixpath
import shlex
import time
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaError
from ansible_collections.agentopia.dtma.plugins.module_utils._common import Manager, argument_spec

POLL_INTERVAL = 0.25
POLL_TIMEOUT = 2


def rollback_command(home, service):
    """The fixed SSH rollback: swap `current` and `previous` (each link replaced atomically), as the agent's own
    POST /redeploy of `previous` does, then restart the service."""
    p = dict((name.replace(".", "_"), shlex.quote(posixpath.join(home, name)))
             for name in ("current", "previous", "current.tmp", "previous.tmp"))
    return ('old="$(readlink {current})" && new="$(readlink {previous})" && '
            'ln -sfn "$new" {current_tmp} && ln -sfn "$old" {previous_tmp} && '
            'mv -Tf {current_tmp} {current} && mv -Tf {previous_tmp} {previous} && '
            '{{ systemctl reset-failed {service} || true; }} && systemctl restart {service}'
            ).format(service=shlex.quote(service), **p)


def health_view(body):
    body = body or {}
    return dict((k, body.get(k)) for k in ("boot_id", "version", "status")) if body else {}


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Redeployer(Manager):
    """Restart the agent or switch its release, then prove a new process answers; restart() and redeploy() share
    that one flow (change())."""

    STATE = "mode"
    HANDLERS = {"restart": "change", "redeploy": "change"}

    def __init__(self, module, client=None):
        super(Redeployer, self).__init__(module, client)
        self.steps = []
        self.error = None  # the DtmaError of the last request that failed
        self.result.update(before={}, after={}, steps=self.steps)

    def subject(self):
        return "the DTMA agent"

    def step(self, name, func):
        """Run one step, record it; func returns (value, result text)."""
        started, t0 = _now(), time.monotonic()
        value, text = func()
        self.steps.append({"step": name, "started": started, "duration_ms": round((time.monotonic() - t0) * 1000, 1),
                           "result": text})
        return value

    def read_health(self):
        try:
            body = self.client.health(retries=None)[1]  # the client's usual retries: a blip is not an answer
        except DtmaError as exc:
            self.error = exc
            return None, exc.message
        return body, "boot_id %s, version %s, %s" % (body.get("boot_id"), body.get("version"), body.get("status"))

    def wait_for_new(self, old_boot_id):
        """Poll /health (no retries, short timeouts) until another boot_id answers or wait_timeout passes."""
        deadline = time.monotonic() + self.params["wait_timeout"]
        last = "no answer yet"
        while True:
            try:
                body = self.client.health(timeout=POLL_TIMEOUT)[1]
                if body.get("boot_id") and body["boot_id"] != old_boot_id:
                    return body, "boot_id %s, version %s, %s" % (body["boot_id"], body.get("version"), body.get("status"))
                last = "the old agent process (boot_id %s) still answers" % old_boot_id
            except DtmaError as exc:
                last = exc.message
            if time.monotonic() >= deadline:
                return None, "no new agent process within %ss; last: %s" % (self.params["wait_timeout"], last)
            time.sleep(POLL_INTERVAL)

    def ask(self, call, *args):
        """One change request to the agent (restart, redeploy): ((status, answer), text), or (None, why not)."""
        try:
            status, body = call(*args)
        except DtmaError as exc:
            self.error = exc
            return None, exc.message
        return (status, body), "HTTP %s: %s" % (status, body.get("message"))

    def change(self):
        mode, version = self.params["mode"], self.params["version"]
        before = self.step("read health", self.read_health)
        if before is None:
            if mode == "restart" and self.params["ssh_host"]:
                self.restart_over_ssh(None, "the agent does not answer GET /health: %s" % self.error.message)
            self.fail("cannot %s the DTMA agent, it does not answer GET /health: %s%s"
                      % (mode, self.error.message,
                         " (restart its service on the host, as playbooks/restart.yml does)" if mode == "restart" else ""),
                      self.error)
        self.result["before"] = health_view(before)
        if mode == "redeploy":
            self.result["release"] = {"version": version}

        if self.check_mode:
            self.exit(changed=mode == "restart" or before.get("version") != version)

        call, args = (self.client.restart_agent, ()) if mode == "restart" else (self.client.redeploy, (version,))
        answer = self.step("request " + mode, lambda: self.ask(call, *args))
        if answer is None:
            if mode == "restart" and self.params["ssh_host"] and self.error.status is None:
                self.restart_over_ssh(before["boot_id"], "POST /restart got no answer: %s" % self.error.message)
            self.fail("the DTMA agent did not %s: %s" % (mode, self.error.message), self.error)
        status, reply = answer
        if mode == "redeploy":
            self.result["release"] = reply.get("data") or {}
            if status == 200 and not self.result["release"].get("changed", True):
                self.exit(after=self.result["before"])  # already current: nothing was done
        self.result["changed"] = True
        if mode == "restart":
            self.result["transport"] = "api"

        after = self.step("wait for a new agent process", lambda: self.wait_for_new(before["boot_id"]))
        if after:
            self.exit(after=health_view(after))

        waited = self.steps[-1]["result"]
        if mode == "restart":
            if self.params["ssh_host"]:
                self.restart_over_ssh(before["boot_id"], "the agent did not come back after POST /restart: %s" % waited)
            self.fail("the DTMA agent did not come back after the restart: %s. Check its service manager "
                      "(systemctl status %s) on the host." % (waited, self.params["service_name"]))
        if not self.params["rollback"]:
            self.fail("the DTMA agent did not come back after switching to release %s: %s. rollback is false, so "
                      "nothing was rolled back." % (version, waited), rolled_back=False)
        self.roll_back(before, waited)

    def roll_back(self, before, waited):
        version = self.params["version"]
        how = self.step("roll back through the API", self.rollback_api)
        if how is None:
            if not self.params["ssh_host"]:
                self.fail("the DTMA agent did not come back after switching to release %s (%s), and it could not be "
                          "rolled back: no agent answers to roll it back through the API (roll it back over the host's "
                          "connection, as playbooks/redeploy.yml does)."
                          % (version, waited), rolled_back=False)
            done = self.step("roll back over SSH", self.rollback_ssh)
            if not done:
                self.fail("the DTMA agent did not come back after switching to release %s (%s), and the rollback "
                          "over SSH failed too: %s" % (version, waited, self.steps[-1]["result"]), rolled_back=False)
            how = "over SSH"
        after = self.step("wait for the agent after the rollback", lambda: self.wait_for_new(before["boot_id"]))
        if not after:
            self.fail("the DTMA agent did not come back after switching to release %s (%s); it was rolled back %s, "
                      "but it did not come back after the rollback either: %s"
                      % (version, waited, how, self.steps[-1]["result"]), rolled_back=True)
        self.result["after"] = health_view(after)
        self.fail("the DTMA agent did not come back after switching to release %s (%s); it was rolled back %s to the "
                  "previous release and answers again (boot_id %s, version %s)."
                  % (version, waited, how, after.get("boot_id"), after.get("version")), rolled_back=True)

    def rollback_api(self):
        answer, text = self.ask(self.client.redeploy, "previous")
        if answer is None:
            return None, "not possible: %s" % text
        return "through the API", text

    def restart_over_ssh(self, old_boot_id, why):
        """`systemctl restart` over SSH, then wait for an agent process other than old_boot_id; exits the module."""
        self.result.update(changed=True, transport="ssh")
        if self.check_mode:
            self.exit()
        # reset-failed first: a crash-looping agent may have hit systemd's start limit, which refuses a plain restart
        command = "{ systemctl reset-failed %s || true; } && systemctl restart %s" % ((shlex.quote(self.params["service_name"]),) * 2)
        if not self.step("restart over SSH", lambda: self.ssh(command)):
            self.fail("%s; the restart over SSH failed too: %s" % (why, self.steps[-1]["result"]))
        after = self.step("wait for a new agent process", lambda: self.wait_for_new(old_boot_id))
        if not after:
            self.fail("%s; it was restarted over SSH but did not answer: %s" % (why, self.steps[-1]["result"]))
        self.exit(after=health_view(after))

    def rollback_ssh(self):
        return self.ssh(rollback_command(self.params["dtma_home"], self.params["service_name"]))

    def ssh(self, command):
        """Run one fixed command over SSH; (True, what ran) or (False, why not)."""
        # imported here: paramiko takes ~0.1 s to import and only the SSH paths need it
        from ansible_collections.agentopia.dtma.plugins.module_utils._ssh import SshError, run_over_ssh, ssh_settings

        try:
            done = run_over_ssh(command, **ssh_settings(self.params))
        except SshError as exc:
            return False, str(exc)
        if done["rc"] != 0:
            return False, "`%s` exited %s: %s" % (command, done["rc"], (done["stderr"] or done["stdout"]).strip()[:500])
        return True, "ran `%s`" % command


def main():
    spec = argument_spec(
        ssh=True,
        mode=dict(type="str", required=True, choices=["restart", "redeploy"]),
        version=dict(type="str"),
        wait_timeout=dict(type="int", default=60),
        rollback=dict(type="bool", default=True),
        dtma_home=dict(type="path", default="/opt/dtma"),
        service_name=dict(type="str", default="dtma"),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_if=[("mode", "redeploy", ["version"])])
    Redeployer(module).run()


if __name__ == "__main__":
    main()
