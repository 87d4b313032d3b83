#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: dtma_mcp_group
short_description: Deploy, converge, restart or remove a group of MCP-server containers through the DTMA agent
version_added: 0.1.0
description:
  - Converges an MCP group on a host running the DTMA agent to the servers given in O(servers) (the agent's
    C(POST /mcp/groups)). Servers that match their spec are left alone, changed ones are recreated, missing ones
    created, stopped ones started, and servers of the group no longer listed are removed.
  - Before changing anything the module asks the agent for the plan (C(POST /mcp/validate), which deploys nothing);
    the plan decides C(changed) and is all that runs in check mode. The agent decides the plan and the deployment
    with one function, so the apply does exactly what the plan said. A re-run with the same spec reports no change;
    a crash-looping or stopped server is never reported unchanged.
  - A server counts as deployed only when its container runs for the settle window (O(settle)) without a restart
    and, with O(wait=true), answers MCP. Otherwise the task fails naming the server, its exit code, restart count
    and last log lines; a server that was recreated keeps its previous container, which the agent restores.
  - O(state=absent) removes every container of the group; O(state=restarted) restarts every server of the group,
    within the agent's restart limit.
  - Images are pulled by the agent as each server's O(servers[].pull) says, with O(servers[].registry_auth) for a
    private registry.
  - A group is the set of containers the agent labelled with its name; nothing else is stored anywhere.
options:
  name:
    description: The group's id (the agent's C(groupId)); letters, digits, C(_), C(.) and C(-), at most 64 characters.
    type: str
    required: true
  state:
    description:
      - V(present) converges the group to O(servers).
      - V(absent) stops and removes every container of the group (O(force_remove), O(stop_timeout)).
      - V(restarted) restarts every server of the group; O(servers) is not used. It always reports a change.
        The agent allows at most three restarts of a server in five minutes and one every 30 seconds (its
        defaults); beyond that the task fails, naming the server and when to retry.
    type: str
    choices: [present, absent, restarted]
    default: present
  servers:
    description:
      - The servers of the group. Required with O(state=present). Servers of the group that are not listed are removed.
    type: list
    elements: dict
    suboptions:
      name:
        description: The server's instance name, also its container name (the agent's C(instanceNameOnToolbox)).
        type: str
        required: true
      image:
        description: The Docker image (the agent's C(dockerImageUrl)); whether the agent pulls it is O(servers[].pull).
        type: str
        required: true
      pull:
        description:
          - When the agent pulls O(servers[].image) (the agent's C(pullPolicy)), as C(community.docker.docker_container)'s
            O(community.docker.docker_container#module:pull) does.
          - V(missing) - only when no local image has that reference; a local image is used as it is, so a moving tag
            such as C(:latest) is not refreshed.
          - V(always) - before every deployment of the group (also when nothing else changed); a server whose pulled
            image differs from the one its container runs is recreated. A server whose image did not change is left
            alone. Check mode cannot know what the registry holds without pulling, which would change the host; it
            shows the plan for the local image and marks the server with C(pull=true) (see RV(plan)), so a run that
            pulls a new image can change more than check mode said.
          - V(never) - the image must be present on the host; when it is not, the task fails (HTTP 422 naming
            O(servers[].pull)) and nothing of the group is changed.
        type: str
        choices: [missing, always, never]
        default: missing
      registry_auth:
        description:
          - Credentials for the registry of a private O(servers[].image), passed to Docker with the pull (its
            C(auth_config), the agent's C(registryAuth)); never stored, logged or returned by the agent.
          - A registry that refuses them fails the task (HTTP 422 naming O(servers[].registry_auth)) and nothing of
            the group is changed (with O(servers[].pull=always)) or that server is not deployed (V(missing)).
        type: dict
        suboptions:
          username:
            description: The registry user.
            type: str
            required: true
          password:
            description: The password or access token (C(no_log)).
            type: str
            required: true
          serveraddress:
            description:
              - The registry, for example V(registry.example.com:5000); by default the registry named in
                O(servers[].image).
            type: str
      account_tool_instance_id:
        description: The backend's account tool instance id, kept in the container's labels.
        type: str
      endpoint_path:
        description: The HTTP path of the MCP endpoint inside the container, used by the agent's MCP probe.
        type: str
        default: /mcp
      transport:
        description: The MCP transport the server speaks. V(stdio) and V(websocket) servers are not probed.
        type: str
        choices: [stdio, sse, streamable-http, websocket]
        default: streamable-http
      ports:
        description:
          - 'Container port to host port, for example C({"8080": 31001}); C(8080/udp) names another protocol, an
            empty host port lets Docker choose one.'
          - The first TCP container port is where the agent probes the MCP endpoint.
        type: dict
      env:
        description:
          - Environment variables of the container, a mapping of names to values.
          - The values are secret (C(no_log)); Ansible hides them everywhere in its output, also where the
            same text occurs in other return values.
        type: dict
      resources:
        description: Resource limits of the container; they override O(servers[].resource_template).
        type: dict
        suboptions:
          memory:
            description: Memory limit, for example V(512m) or V(1g).
            type: str
          cpus:
            description: CPU limit in CPUs, for example V(0.5).
            type: float
      resource_template:
        description:
          - A resource preset of the agent (C(GET /mcp/templates)), for example V(small) (256m, 0.25 CPU),
            V(medium) (512m, 0.5), V(large) (1g, 1.0) or V(xlarge) (2g, 2.0).
          - Values in O(servers[].resources) override the preset's.
        type: str
      config_override:
        description:
          - 'A Docker container-create config merged into the one the agent builds (the agent''s
            C(baseConfigOverrideJson)), for example C({"Cmd": ["sleep", "3600"]}).'
          - The agent checks the merged config against an allowlist (command, env, labels, ports, resource limits,
            restart policy, log options kept on the host, the group's own network and volumes, ...; see the README)
            and refuses anything else, for example C(Privileged), C(CapAdd), host paths, host namespaces or devices;
            the task then fails naming the key.
        type: dict
  max_concurrent:
    description: How many servers of one wave the agent deploys in parallel (the agent's C(maxConcurrentDeployments)).
    type: int
    default: 3
  dependency_order:
    description:
      - Server names in the order they are deployed; each one is a wave of its own and a failed wave stops the
        later ones. Servers not listed are deployed together last.
    type: list
    elements: str
    default: []
  shared_networking:
    description: Put the group on its own Docker network C(agentopia-mcp-<name>), where servers reach each other by name.
    type: bool
    default: false
  settle:
    description:
      - Seconds a created, recreated or started server must run without a restart to count as deployed (the
        agent's C(options.settleSeconds), 0 to 60). The agent's own default (C(DTMA_SETTLE_S), 3 seconds) when not
        given.
    type: float
  wait:
    description:
      - Servers the agent deploys must also answer MCP (C(initialize) and C(tools/list)) within O(wait_timeout)
        to count as deployed (the agent's C(options.readyTimeoutSeconds)).
      - After the group is converged (or restarted), wait until every server's container runs and its MCP probe
        succeeds; servers that are not probed (V(stdio), V(websocket), no O(servers[].ports)) only need to run.
      - The task fails after O(wait_timeout) with each server's health. RV(health) and RV(collective_status)
        are returned only when waiting.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the group to be healthy when O(wait=true).
    type: int
    default: 60
  force_remove:
    description: With O(state=absent), kill the containers at once instead of stopping them gracefully.
    type: bool
    default: false
  stop_timeout:
    description:
      - Seconds a container gets to stop before it is killed, with O(state=absent) (unless O(force_remove=true))
        and with O(state=restarted) (the name C(community.docker.docker_container) uses).
      - The alias O(graceful_timeout) is the name this option had before; it is the same option.
    type: int
    default: 10
    aliases: [graceful_timeout]
extends_documentation_fragment:
  - agentopia.dtma.connection
  - agentopia.dtma.connection.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Check mode returns the agent's plan (C(POST /mcp/validate)) and changes nothing.
  diff_mode:
    support: full
    details: The diff lists each server's image, state, transport, endpoint path and config hash; never its environment.
  platform:
    support: full
    platforms: posix
  idempotent:
    support: partial
    details: O(state=present) and O(state=absent) are idempotent; O(state=restarted) restarts and reports a change every time.
notes:
  - Pulling a large image may take longer than O(timeout) seconds; raise it for the first deployment.
  - The agent answers C(/mcp/validate) with the same planning code it converges with, so check mode shows what
    the real run does, except for failures only Docker can find (a host port taken by another process, an image
    that cannot be pulled) and, with O(servers[].pull=always), what the pull brings (the apply pulls first, then
    plans with the pulled image using the same function).
seealso:
  - module: agentopia.dtma.dtma_mcp_server
author:
  - Agentopia engineering (@agentopia)
'''

EXAMPLES = r'''
- name: Deploy the MCP servers of an account
  hosts: droplets
  gather_facts: false
  module_defaults:
    group/agentopia.dtma.dtma:
      url: "http://{{ ansible_host }}:30000"
      token: "{{ dtma_token }}"
  tasks:
    - name: Converge the group and wait until every server answers MCP
      agentopia.dtma.dtma_mcp_group:
        name: acct-42
        servers:
          - name: acct-42-github
            image: ghcr.io/example/github-mcp:1.4.0
            account_tool_instance_id: ati-1001
            transport: streamable-http
            endpoint_path: /mcp
            ports:
              "8080": 31001
            env:
              GITHUB_TOKEN: "{{ vault_github_token }}"
            resource_template: medium
          - name: acct-42-files
            image: ghcr.io/example/files-mcp:2.0.1
            transport: sse
            endpoint_path: /sse
            ports:
              "8080": 31002
            resources:
              memory: 256m
              cpus: 0.25
        dependency_order: [acct-42-github]
        wait: true
        wait_timeout: 120
      delegate_to: localhost
      register: group

    - name: Show the probe of each server
      ansible.builtin.debug:
        msg: "{{ group.health | map(attribute='health') | list }}"

- name: Deploy a private image, pulling it on every run so that a moved tag is deployed
  agentopia.dtma.dtma_mcp_group:
    name: acct-7
    servers:
      - name: acct-7-search
        image: registry.example.com:5000/mcp/search:stable
        pull: always
        registry_auth:
          username: deploy
          password: "{{ vault_registry_password }}"
        ports:
          "8080": 31010
  delegate_to: localhost

- name: Restart every server of a group
  agentopia.dtma.dtma_mcp_group:
    name: acct-42
    state: restarted
  delegate_to: localhost

- name: Remove a group, giving each server 30 seconds to stop
  agentopia.dtma.dtma_mcp_group:
    name: acct-42
    state: absent
    stop_timeout: 30
  delegate_to: localhost
'''

RETURN = r'''
name:
  description: The group's id (O(name)).
  returned: always
  type: str
  sample: acct-42
group:
  description:
    - The group's id, as RV(name).
    - Deprecated, use RV(name); returned as well until 1.0.0.
  returned: always
  type: str
  sample: acct-42
servers:
  description:
    - With O(state=present), what happened to each server, in the order of O(servers) (removed ones last).
      In check mode these are the plan's entries (with C(action), nothing has C(outcome)).
    - With O(state=absent), the removed servers; with O(state=restarted), the restarted ones.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The server's instance name.
      type: str
      sample: acct-42-github
    outcome:
      description:
        - V(created), V(unchanged), V(recreated), V(started), V(cleaned) (containers kept aside by an interrupted
          recreate were removed), V(removed), V(restarted) or V(failed).
        - Not returned in check mode.
      type: str
      sample: recreated
    action:
      description: In check mode, the planned action (see RV(plan)).
      type: str
      sample: recreate
    reason:
      description: Why the agent did (or would do) it.
      type: str
      sample: configuration changed
    container_id:
      description: The server's container id (the new one after a recreate).
      type: str
      sample: 3f2a9c0d1b7e4e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f
    exit_code:
      description: For a server that did not stay up through the settle window, its container's last exit code.
      type: int
      sample: 1
    restart_count:
      description: For a server that did not stay up, how often Docker restarted its container.
      type: int
      sample: 3
    logs:
      description: For a server that did not stay up or did not answer MCP, its container's last 20 log lines.
      type: list
      elements: str
      sample: ["Traceback (most recent call last):", "ModuleNotFoundError: No module named 'mcp'"]
  sample:
    - {name: acct-42-github, outcome: unchanged, reason: up to date, container_id: 3f2a9c0d1b7e}
    - {name: acct-42-files, outcome: recreated, reason: configuration changed, container_id: 9b1c0d3e4f5a}
plan:
  description:
    - With O(state=present), the agent's plan from C(POST /mcp/validate), made before anything changed.
    - C(action) is one of V(create), V(recreate) (also for a crash-looping or dead container), V(start) (a stopped,
      paused or never started one), V(unchanged), V(clean) (containers kept aside by an interrupted recreate are
      removed), V(remove) or V(conflict) (the name is used by a container outside the group; the task fails).
  returned: when O(state=present)
  type: list
  elements: dict
  contains:
    name:
      description: The server's instance name.
      type: str
    action:
      description: What converging does with the server.
      type: str
    reason:
      description: Why.
      type: str
    container_id:
      description: The existing container's id, or null when there is none.
      type: str
    pull:
      description:
        - Whether the apply pulls the server's image first (O(servers[].pull=always), or a missing image with
          V(missing)). With V(always) the action is the one for the local image; a pulled image that differs makes
          the apply recreate the server.
      type: bool
  sample:
    - {name: acct-42-github, action: unchanged, reason: up to date, container_id: 3f2a9c0d1b7e}
    - {name: acct-42-files, action: recreate, reason: configuration changed, container_id: 5e6f7a8b9c0d}
health:
  description:
    - Each server of the group as C(GET /mcp/health/<name>) last reported it, including the MCP probe
      (C(server_name), C(protocol_version), C(tools), C(latency_ms)).
  returned: when O(wait=true) and not in check mode
  type: list
  elements: dict
  contains:
    name:
      description: The server's instance name.
      type: str
    server:
      description:
        - The server's instance name, as C(name).
        - Deprecated, use C(name); returned as well until 1.0.0.
      type: str
    state:
      description: The container's state.
      type: str
    health:
      description: C(container), C(status) (V(healthy) or V(unhealthy)), C(reason) and C(probe).
      type: dict
  sample:
    - name: acct-42-github
      server: acct-42-github
      state: running
      health:
        container: running
        status: healthy
        probe: {ok: true, server_name: github, protocol_version: "2025-06-18", tool_count: 2, tools: [search, get_issue]}
collective_status:
  description: V(healthy) when every server is, V(failed) when none is, V(degraded) otherwise.
  returned: when O(wait=true) and not in check mode
  type: str
  sample: healthy
'''

import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentopia.dtma.plugins.module_utils._api import (
    DtmaConnectionError,
    DtmaError,
    DtmaInvalid,
    DtmaNotFound,
    DtmaRateLimited,
)
from ansible_collections.agentopia.dtma.plugins.module_utils._common import IMAGE_ARGS, Manager, argument_spec, image_fields

# The agent's field names and the options they come from, to name the option in the agent's validation errors.
_OPTION_NAMES = {
    "groupId": "name",
    "instanceNameOnToolbox": "name",
    "dockerImageUrl": "image",
    "pullPolicy": "pull",
    "registryAuth": "registry_auth",
    "accountToolInstanceId": "account_tool_instance_id",
    "mcpEndpointPath": "endpoint_path",
    "mcpTransportType": "transport",
    "portBindings": "ports",
    "environmentVariables": "env",
    "resourceLimits": "resources",
    "baseConfigOverrideJson": "config_override",
    "maxConcurrentDeployments": "max_concurrent",
    "dependencyOrder": "dependency_order",
    "sharedNetworking": "shared_networking",
    "settleSeconds": "settle",
    "readyTimeoutSeconds": "wait_timeout",
}


def server_payload(server):
    """One server option as the agent's McpServerSpec."""
    limits = dict((k, v) for k, v in (server.get("resources") or {}).items() if v not in (None, ""))
    if server.get("resource_template"):
        limits["template"] = server["resource_template"]
    fields = {
        "instanceNameOnToolbox": server["name"],
        "dockerImageUrl": server["image"],
        "accountToolInstanceId": server.get("account_tool_instance_id"),
        "mcpEndpointPath": server.get("endpoint_path") or "/mcp",
        "mcpTransportType": server.get("transport") or "streamable-http",
        "portBindings": server.get("ports"),
        "environmentVariables": server.get("env"),
        "resourceLimits": limits,
        "baseConfigOverrideJson": server.get("config_override"),
    }
    fields.update(image_fields(server))
    return dict((k, v) for k, v in fields.items() if v not in (None, {}, ""))


def group_payload(params):
    """The module's options as the agent's GroupDeploy body (the one place that maps names)."""
    options = {
        "maxConcurrentDeployments": params.get("max_concurrent", 3),
        "dependencyOrder": list(params.get("dependency_order") or []),
        "sharedNetworking": bool(params.get("shared_networking")),
    }
    if params.get("settle") is not None:
        options["settleSeconds"] = params["settle"]
    if params.get("wait"):
        options["readyTimeoutSeconds"] = params.get("wait_timeout", 60)
    return {"groupId": params["name"], "servers": [server_payload(s) for s in params.get("servers") or []],
            "options": options}


def option_path(text):
    """Rewrite the agent's field paths (servers.0.instanceNameOnToolbox, servers[x].baseConfigOverrideJson)
    with the module's option names (servers[0].name, servers[x].config_override)."""
    text = re.sub(r"\bservers\.(\d+)\b", r"servers[\1]", text)
    text = re.sub(r"\boptions\.(?=[a-zA-Z])", "", text)
    return re.sub(r"\b(%s)\b" % "|".join(_OPTION_NAMES), lambda m: _OPTION_NAMES[m.group(1)], text)


def server_name(view):
    """A server's name in the agent's views (older agents named it `server` only)."""
    return view.get("name") or view.get("server")


def server_state(view):
    """A server as it runs, for the diff: never its environment."""
    return {"name": server_name(view), "image": view.get("image"), "state": view.get("state"),
            "transport": view.get("mcp_transport"), "endpoint_path": view.get("mcp_endpoint_path"),
            "config": view.get("config_hash")}


def build_diff(current, payload, plan):
    """before: the group's servers as they are; after: the servers the payload asks for, with the config hash
    kept where the plan keeps the container and marked as new where it creates or recreates one."""
    before = sorted((server_state(v) for v in current), key=lambda s: s["name"])
    hashes = dict((s["name"], s["config"]) for s in before)
    steps = dict((s["name"], s) for s in plan)
    after = []
    for spec in payload["servers"]:
        name = spec["instanceNameOnToolbox"]
        step = steps.get(name, {})
        if step.get("action") in ("unchanged", "start"):
            config = hashes.get(name)
        else:
            config = "new (%s)" % (step.get("reason") or "planned")
        after.append({"name": name, "image": spec["dockerImageUrl"], "state": "running",
                      "transport": spec.get("mcpTransportType", "streamable-http"),
                      "endpoint_path": spec.get("mcpEndpointPath", "/mcp"), "config": config})
    after.sort(key=lambda s: s["name"])
    return {"before": {"servers": before}, "after": {"servers": after}}


def is_ready(server):
    """Running and, where the agent probes it, answering MCP (the agent's own healthy verdict)."""
    return server.get("health", {}).get("status") == "healthy"


def unhealthy_summary(servers, wanted):
    """One line naming each server that is not ready, and why."""
    seen = dict((server_name(s), s) for s in servers)
    parts = []
    for name in wanted:
        server = seen.get(name)
        if server is None:
            parts.append("%s: no container" % name)
        elif not is_ready(server):
            health = server.get("health", {})
            parts.append("%s: %s" % (name, health.get("reason") or "container is %s" % health.get("container")))
    return "; ".join(parts)


class GroupManager(Manager):
    """One group: the plan decides, then present() / absent() / restarted()."""

    def __init__(self, module, client=None):
        super(GroupManager, self).__init__(module, client)
        self.name = self.params["name"]
        self.grace = self.params["stop_timeout"]
        # `group` is the deprecated name of `name`, returned as well until 1.0.0
        self.result.update(name=self.name, group=self.name, servers=[])

    def subject(self):
        return "group %s" % self.name

    def describe(self, exc):
        return "group %s (state=%s): %s" % (self.name, self.params["state"], option_path(exc.message))

    def current(self):
        """The group's servers as the agent reads them from Docker (no probe: cheap)."""
        return self.client.mcp_servers(self.name)

    # -- states ------------------------------------------------------------------------------------------

    def present(self):
        payload = group_payload(self.params)
        try:
            plan = self.client.validate_group(payload)
        except DtmaInvalid as exc:
            fields = [dict(f, option=option_path(f.get("field") or "")) for f in exc.body.get("fields") or []]
            self.fail("the DTMA agent refused the spec of group %s: %s (HTTP %s)"
                      % (self.name, option_path(exc.body.get("message") or exc.message), exc.status), exc, fields=fields)
        self.result["plan"] = plan
        conflicts = [s for s in plan if s["action"] == "conflict"]
        if conflicts:
            self.fail("group %s cannot be deployed: %s; rename the server or remove that container"
                      % (self.name, "; ".join("%s: %s" % (s["name"], s["reason"]) for s in conflicts)), servers=plan)
        changed = any(s["action"] != "unchanged" for s in plan)
        self.result["changed"] = changed
        if self.module._diff:
            self.result["diff"] = build_diff(self.current(), payload, plan)
        if self.check_mode:
            self.result["servers"] = plan
            return
        # a server pulled on every run (pull=always) may change with the pull although the plan for the local
        # image says it is unchanged: the agent pulls, plans again with the same function and applies that
        if changed or any(s.get("pull") for s in plan):
            self.deploy(payload)
        else:
            self.result["servers"] = [{"name": s["name"], "outcome": "unchanged", "reason": s["reason"],
                                       "container_id": s["container_id"]} for s in plan]
        if self.params["wait"]:
            self.wait([s["instanceNameOnToolbox"] for s in payload["servers"]])

    def deploy(self, payload):
        # each wave waits for its servers to settle (and, with wait, to answer MCP)
        ready_s = (self.params["settle"] or 3) + (self.params["wait_timeout"] if self.params["wait"] else 0)
        try:
            body = self.client.deploy_group(payload, ready_s * max(1, len(self.params["dependency_order"]) + 1))
        except DtmaConnectionError as exc:
            hint = (" The deployment may still be running on the agent; raise the timeout option for slow image pulls."
                    if "Timeout" in exc.message else " Check the url option and that the agent runs.")
            self.fail("group %s: %s.%s" % (self.name, exc.message, hint), exc)
        except DtmaError as exc:
            servers = (exc.body.get("data") or {}).get("servers") or []
            if servers:  # the agent converged what it could and says per server what failed
                self.result["servers"] = servers
                self.result["changed"] = any(s.get("outcome") not in ("unchanged", "failed") for s in servers)
                failed = [s for s in servers if s.get("outcome") == "failed"]
                detail = "; ".join("%s: %s" % (s["name"], s.get("message") or s.get("error")) for s in failed)
                self.fail("group %s: not every server could be deployed: %s (HTTP %s)"
                          % (self.name, option_path(detail or exc.message), exc.status), exc)
            if isinstance(exc, DtmaInvalid):  # refused before anything changed (an image pull, a policy of never)
                self.fail("the DTMA agent refused to deploy group %s: %s (HTTP %s); nothing was changed"
                          % (self.name, option_path(exc.body.get("message") or exc.message), exc.status), exc)
            raise
        servers = body["data"]["servers"]
        self.result["servers"] = servers
        self.result["changed"] = any(s.get("outcome") != "unchanged" for s in servers)

    def wait(self, wanted):
        timeout = self.params["wait_timeout"]
        deadline = time.monotonic() + timeout
        servers = []
        while True:
            remaining = deadline - time.monotonic()
            retry_for = max(0.0, min(5.0, remaining))  # the agent retries refused connections for this long
            try:
                body = self.client.group_health(self.name, retry_for)
                servers = body["data"]["servers"]
                self.result["health"] = servers
                self.result["collective_status"] = body["data"]["collectiveStatus"]
            except DtmaNotFound:
                servers = []
            by_name = dict((server_name(s), s) for s in servers)
            if all(n in by_name and is_ready(by_name[n]) for n in wanted):
                return
            if time.monotonic() >= deadline:
                self.fail("group %s was not healthy within %ss: %s" % (self.name, timeout, unhealthy_summary(servers, wanted)))
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def absent(self):
        current = self.current()
        self.result["changed"] = bool(current)
        if self.module._diff:
            self.result["diff"] = {"before": {"servers": sorted((server_state(v) for v in current), key=lambda s: s["name"])},
                                   "after": {"servers": []}}
        self.result["servers"] = [{"name": server_name(s), "outcome": "removed", "container_id": s["container_id"]}
                                  for s in current]
        if not current or self.check_mode:
            return
        try:
            body = self.client.remove_group(self.name, self.params["force_remove"], self.grace)
        except DtmaNotFound:  # removed by someone else between the two calls
            self.result.update(changed=False, servers=[])
            return
        self.result["servers"] = body["data"]["servers"]

    def restarted(self):
        current = sorted(self.current(), key=server_name)
        if not current:
            self.fail("group %s has no servers on the agent; there is nothing to restart (deploy it with state=present)" % self.name)
        self.result["changed"] = True
        if self.module._diff:
            before = sorted((server_state(v) for v in current), key=lambda s: s["name"])
            self.result["diff"] = {"before": {"servers": before},
                                   "after": {"servers": [dict(s, state="running") for s in before]}}
        if self.check_mode:
            self.result["servers"] = [{"name": server_name(s), "action": "restart", "container_id": s["container_id"]}
                                      for s in current]
            return
        done = self.result["servers"]
        for server in current:
            name = server_name(server)
            try:
                body = self.client.restart_server(name, self.grace)
            except DtmaRateLimited as exc:
                restarted = ", ".join(s["name"] for s in done) or "none"
                self.fail("MCP server %s of group %s was not restarted: the agent's restart limit refused it (%s); retry after %s seconds. "
                          "Restarted before it: %s" % (name, self.name, exc.body.get("message") or exc.message, exc.retry_after, restarted),
                          exc, server=name)
            data = body.get("data") or {}
            done.append({"name": name, "outcome": "restarted", "container_id": data.get("container_id"), "state": data.get("state")})
        if self.params["wait"]:
            self.wait([server_name(s) for s in current])


def main():
    server_options = dict(
        IMAGE_ARGS,
        name=dict(type="str", required=True),
        image=dict(type="str", required=True),
        account_tool_instance_id=dict(type="str"),
        endpoint_path=dict(type="str", default="/mcp"),
        transport=dict(type="str", default="streamable-http", choices=["stdio", "sse", "streamable-http", "websocket"]),
        ports=dict(type="dict"),
        env=dict(type="dict", no_log=True),
        resources=dict(type="dict", options=dict(memory=dict(type="str"), cpus=dict(type="float"))),
        resource_template=dict(type="str"),
        config_override=dict(type="dict"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent", "restarted"]),
            servers=dict(type="list", elements="dict", options=server_options),
            max_concurrent=dict(type="int", default=3),
            dependency_order=dict(type="list", elements="str", default=[]),
            shared_networking=dict(type="bool", default=False),
            settle=dict(type="float"),
            wait=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=60),
            force_remove=dict(type="bool", default=False),
            stop_timeout=dict(type="int", default=10, aliases=["graceful_timeout"]),
        ),
        required_if=[("state", "present", ["servers"])],
        supports_check_mode=True,
    )
    GroupManager(module).run()


if __name__ == "__main__":
    main()
