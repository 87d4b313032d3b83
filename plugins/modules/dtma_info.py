#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: dtma_info
short_description: Health checks and diagnostics of a host running the DTMA agent
version_added: 0.1.0
description:
  - Gathers, per section chosen in O(gather), what the DTMA agent reports about itself, Docker, the system, its logs
    and its MCP servers, and runs health checks of the agent, Docker, SSH and the backend.
  - An information module; it never changes anything and always reports C(changed=false).
  - The V(health) section never fails the task, even when the agent is down or O(url) is not a URL the module can
    call (no V(http://) or V(https://)); that is what it reports. Any other section that the agent cannot answer
    fails the task with the reason.
options:
  gather:
    description:
      - The sections to gather; each is returned under its own key.
      - V(health) - checks of the agent's API (C(GET /health), no token needed), Docker (as the agent sees it),
        SSH (only when O(ssh_host) is given) and the backend (only when O(backend_url) is known), with an
        C(overall) verdict.
      - V(status) - C(GET /status) (version, environment, tool instances, system metrics).
      - V(docker) - C(GET /diagnostics/docker) (version, info counts, every container). When Docker is down, the
        agent's answer says so (C(docker_info_success=false)) and the task does not fail.
      - V(system) - C(GET /diagnostics/system) (uptime, load, disks, memory, top processes, the agent's port, runtime).
      - V(logs) - C(GET /diagnostics/logs) (the agent's journal and log, and each MCP container's last O(log_lines) lines).
      - V(mcp) - C(GET /mcp/status?probe=true) (every MCP server, its state, its restart count and an MCP probe of it).
      - V(audit) - C(GET /diagnostics/audit) (the newest O(audit_limit) entries of the agent's audit trail whose
        verdict is one of O(audit_verdicts), newest first; the agent keeps the last 1000 entries since it started).
    type: list
    elements: str
    choices: [health, status, docker, system, logs, mcp, audit]
    default: [health, status]
  audit_verdicts:
    description: The verdicts of the audit entries the V(audit) section returns.
    type: list
    elements: str
    choices: [executed, blocked, rejected, docker_denied, "dry_run:allowed", "dry_run:blocked"]
    default: [blocked, docker_denied]
  audit_limit:
    description: Audit entries the V(audit) section returns at most (1 to 1000).
    type: int
    default: 20
  log_lines:
    description: Lines per log source for the V(logs) section (1 to 10000).
    type: int
    default: 100
  backend_url:
    description:
      - The Agentopia backend whose reachability the V(health) section checks (a C(GET) of this URL without any
        credentials; any HTTP answer counts as reachable). No token is sent to it.
      - If not set, the environment variable E(AGENTOPIA_API_BASE_URL) is used; when neither is set the check is
        V(unknown).
    type: str
extends_documentation_fragment:
  - agentopia.dtma.connection
  - agentopia.dtma.connection.ssh
  - agentopia.dtma.connection.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same way in check mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
  idempotent:
    support: full
notes:
  - The module runs in the controller's worker process (its action plugin), not on the managed host; it only talks
    HTTP to the agent, so no Python is started per host, and C(delegate_to) is not needed (it does no harm).
    Environment fallbacks read the controller's environment with the task's C(environment) over it.
  - The SSH check connects with the SSH options and runs C(true); it needs the paramiko library. With
    O(ssh_host_key_checking=true) (the default) an unknown host key makes the check V(unhealthy).
  - C(overall) is V(healthy) when every check that could be made (not V(unknown)) is V(healthy), V(unhealthy) when
    the agent's API is V(unhealthy), and V(degraded) otherwise (the agent answers but Docker, SSH or the backend
    does not).
  - The agent's API check is V(healthy) only when C(GET /health) answers HTTP 200; the agent answers 503 when it
    cannot reach Docker, which makes both the API and the Docker checks V(unhealthy).
author:
  - Agentopia engineering (@agentopia)
'''

EXAMPLES = r'''
- name: Health of every droplet
  agentopia.dtma.dtma_info:
  register: diag
  delegate_to: localhost
  module_defaults:
    group/agentopia.dtma.dtma:
      url: "http://{{ ansible_host }}:30000"
      token: "{{ dtma_token }}"

- name: Fail the play for unhealthy droplets
  ansible.builtin.assert:
    that: diag.health.overall == 'healthy'
    fail_msg: "{{ diag.health.checks | dict2items | rejectattr('value.status', 'eq', 'healthy') | list }}"

- name: Everything, with the SSH and backend checks
  agentopia.dtma.dtma_info:
    gather: [health, status, docker, system, logs, mcp, audit]
    log_lines: 50
    ssh_host: "{{ ansible_host }}"
    ssh_user: ops
    ssh_key_file: ~/.ssh/droplets
    backend_url: https://api.agentopia.example
  delegate_to: localhost
'''

RETURN = r'''
health:
  description: The health checks.
  returned: when V(health) is in O(gather)
  type: dict
  sample:
    overall: healthy
    checks:
      agent_api: {status: healthy, reason: HTTP 200, response_time_ms: 4.1}
      docker: {status: healthy, reason: the agent reaches the Docker engine, response_time_ms: null}
      ssh: {status: unknown, reason: no ssh_host given, response_time_ms: null}
      backend: {status: unknown, reason: no backend URL, response_time_ms: null}
    agent: {status: ok, docker: true, version: 0.1.0, uptime_s: 812.3, boot_id: 5b0c7e0e8f0a4c38a1e4d2a0b6f1c9d2}
  contains:
    overall:
      description: V(healthy), V(degraded) or V(unhealthy) (see the notes).
      type: str
    checks:
      description:
        - C(agent_api), C(docker), C(ssh) and C(backend), each with C(status) (V(healthy), V(unhealthy) or
          V(unknown)), C(reason) and C(response_time_ms) (null when nothing was timed).
      type: dict
    agent:
      description: The agent's C(GET /health) answer; empty when it did not answer.
      type: dict
status:
  description: The agent's C(GET /status) answer.
  returned: when V(status) is in O(gather)
  type: dict
  sample: {version: 0.1.0, environment: {hasAuthToken: true, hasApiKey: false, hasApiBaseUrl: false, port: 30000},
           tool_instances: [], system_metrics: {cpu_load_percent: 3.5}, timestamp: "2026-01-01T00:00:00.000Z"}
docker:
  description: The C(diagnostics) of C(GET /diagnostics/docker).
  returned: when V(docker) is in O(gather)
  type: dict
  sample: {docker_version: 20.10.24, docker_info_success: true, docker_info: {ServerVersion: 20.10.24, Containers: 3},
           containers: []}
system:
  description: The C(diagnostics) of C(GET /diagnostics/system).
  returned: when V(system) is in O(gather)
  type: dict
  sample: {uptime: {seconds: 86400}, disk_usage: [], memory_info: {percent: 41.2}, top_processes: [],
           dtma_port_status: {}, environment: {}}
logs:
  description: The C(logs) of C(GET /diagnostics/logs).
  returned: when V(logs) is in O(gather)
  type: dict
  sample: {dtma_service: {available: false, reason: journalctl is not installed on this host}, mcp_containers: {},
           application_logs: []}
mcp:
  description: The answer of C(GET /mcp/status?probe=true).
  returned: when V(mcp) is in O(gather)
  type: dict
  sample: {mcp_servers: [], count: 0, timestamp: "2026-01-01T00:00:00.000Z"}
audit:
  description: The answer of C(GET /diagnostics/audit).
  returned: when V(audit) is in O(gather)
  type: dict
  sample:
    entries:
      - {event: exec, time: "2026-01-01T00:00:00.000Z", client: 10.0.0.5, token_id: backend, command: cat /etc/shadow,
         verdict: blocked, rule: deny.secrets, reason: reads a secret file, exit_code: null, duration_ms: null,
         timed_out: null, truncated: null}
    count: 1
    verdicts: [blocked, docker_denied]
    source: the last 1000 audit entries of this agent process (since its start)
    timestamp: "2026-01-01T00:00:00.000Z"
'''

import time

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.agentopia.dtma.plugins.module_utils._api import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
    DtmaError,
    DtmaUrlError,
)
from ansible_collections.agentopia.dtma.plugins.module_utils._common import Manager, argument_spec, client

if HAS_REQUESTS:  # _api found it; the backend check calls it directly
    import requests

BACKEND_TIMEOUT = 5


def _ms(started):
    return round((time.monotonic() - started) * 1000, 1)


def check(status, reason, response_time_ms=None):
    return {"status": status, "reason": reason, "response_time_ms": response_time_ms}


def _without_success(body):
    return dict((k, v) for k, v in body.items() if k != "success")


# section -> (the agent's route, for messages; how to ask the client; what of the answer to return)
SECTIONS = {
    "status": ("GET /status", lambda api, params: api.status(), _without_success),
    "docker": ("GET /diagnostics/docker", lambda api, params: api.diagnostics("docker")[1], lambda body: body.get("diagnostics")),
    "system": ("GET /diagnostics/system", lambda api, params: api.diagnostics("system")[1], lambda body: body.get("diagnostics")),
    "logs": ("GET /diagnostics/logs", lambda api, params: api.diagnostics("logs", lines=params["log_lines"])[1],
             lambda body: body.get("logs")),
    "mcp": ("GET /mcp/status?probe=true", lambda api, params: api.mcp_status(probe=True), _without_success),
    "audit": ("GET /diagnostics/audit", lambda api, params: api.audit(params["audit_verdicts"], params["audit_limit"]),
              _without_success),
}


def agent_checks(api):
    """agent_api and docker from one GET /health (single attempt: a monitor reports what it sees)."""
    started = time.monotonic()
    try:
        status, body = api.health()
    except DtmaError as exc:
        return (check("unhealthy", exc.message, _ms(started)),
                check("unknown", "the agent did not answer, so Docker could not be checked"), {})
    elapsed = _ms(started)
    if status == 200:
        api_check = check("healthy", "HTTP 200", elapsed)
    else:
        api_check = check("unhealthy", "HTTP %s: the agent answers but reports itself %s" % (status, body.get("status", "unhealthy")), elapsed)
    if body.get("docker") is True:
        docker = check("healthy", "the agent reaches the Docker engine")
    elif body.get("docker") is False:
        docker = check("unhealthy", "the agent cannot reach the Docker engine")
    else:
        docker = check("unknown", "the agent's /health answer has no docker flag")
    return api_check, docker, body


def ssh_check(params):
    if not params["ssh_host"]:
        return check("unknown", "no ssh_host given")
    # imported here: paramiko takes ~0.1 s to import and most runs have no SSH check
    from ansible_collections.agentopia.dtma.plugins.module_utils._ssh import SshError, run_over_ssh, ssh_settings

    started = time.monotonic()
    try:
        done = run_over_ssh("true", **ssh_settings(params))
    except SshError as exc:
        return check("unhealthy", str(exc), _ms(started))
    if done["rc"] != 0:
        return check("unhealthy", "connected, but `true` exited %s: %s" % (done["rc"], done["stderr"].strip()[:300]), _ms(started))
    return check("healthy", "connected as %s and ran `true`" % params["ssh_user"], _ms(started))


def backend_check(url):
    if not url:
        return check("unknown", "no backend URL (set backend_url or AGENTOPIA_API_BASE_URL)")
    started = time.monotonic()
    try:
        response = requests.get(url, timeout=BACKEND_TIMEOUT, allow_redirects=False)
    except requests.exceptions.RequestException as exc:
        return check("unhealthy", "%s did not answer: %s" % (url, exc.__class__.__name__), _ms(started))
    return check("healthy", "%s answered HTTP %s" % (url, response.status_code), _ms(started))


def overall(checks):
    if checks["agent_api"]["status"] == "unhealthy":
        return "unhealthy"
    known = [c["status"] for c in checks.values() if c["status"] != "unknown"]
    return "healthy" if all(s == "healthy" for s in known) else "degraded"


class InfoManager(Manager):
    """Gathers each section asked for, in order; never changes anything. The health section never fails."""

    STATE = None
    HANDLERS = {None: "gather"}

    def __init__(self, module, client=None):
        self.url_error = None  # a url the client refuses: the health section's verdict, any other section's failure
        super(InfoManager, self).__init__(module, client)

    def check_options(self):
        if not HAS_REQUESTS:
            self.fail("the requests Python library is required on the controller", exception=REQUESTS_IMPORT_ERROR)
        if not 1 <= self.params["log_lines"] <= 10000:
            self.fail("log_lines must be between 1 and 10000, not %s" % self.params["log_lines"])
        if not 1 <= self.params["audit_limit"] <= 1000:
            self.fail("audit_limit must be between 1 and 1000, not %s" % self.params["audit_limit"])

    def connect(self):
        try:
            return client(self.module, raise_url_error=True, fail=self.fail)
        except DtmaUrlError as exc:
            self.url_error = exc
            return None

    def health(self):
        if self.url_error is not None:  # nothing could be asked: the URL is the agent check's verdict
            api, docker, body = (check("unhealthy", self.url_error.message),
                                 check("unknown", "the agent could not be asked, so Docker could not be checked"), {})
        else:
            api, docker, body = agent_checks(self.client)
        checks = {"agent_api": api, "docker": docker, "ssh": ssh_check(self.params),
                  "backend": backend_check(self.params["backend_url"])}
        return {"overall": overall(checks), "checks": checks, "agent": body}

    def gather(self):
        for section in dict.fromkeys(self.params["gather"]):  # each once, in the order asked
            if section == "health":
                self.result["health"] = self.health()
                continue
            if self.url_error is not None:
                self.fail("could not gather the %s section from the DTMA agent: %s" % (section, self.url_error.message))
            route, ask, keep = SECTIONS[section]
            try:
                self.result[section] = keep(ask(self.client, self.params))
            except DtmaError as exc:
                self.fail("could not gather the %s section from the DTMA agent (%s): %s" % (section, route, exc.message), exc)


def module_args():
    """The options (also validated by the action plugin, which runs InfoManager in the controller's worker)."""
    return argument_spec(
        ssh=True,
        gather=dict(type="list", elements="str", default=["health", "status"],
                    choices=["health", "status", "docker", "system", "logs", "mcp", "audit"]),
        log_lines=dict(type="int", default=100),
        audit_verdicts=dict(type="list", elements="str", default=["blocked", "docker_denied"],
                            choices=["executed", "blocked", "rejected", "docker_denied", "dry_run:allowed",
                                     "dry_run:blocked"]),
        audit_limit=dict(type="int", default=20),
        backend_url=dict(type="str", fallback=(env_fallback, ["AGENTOPIA_API_BASE_URL"])),
    )


def main():
    module = AnsibleModule(argument_spec=module_args(), supports_check_mode=True)
    InfoManager(module).run()


if __name__ == "__main__":
    main()
