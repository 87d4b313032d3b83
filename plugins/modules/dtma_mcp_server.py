#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
---
module: dtma_mcp_server
short_description: Start, stop or restart one MCP server managed by the DTMA agent
version_added: 0.1.0
description:
  - Starts, stops or restarts one MCP-server container of a group deployed with M(agentopia.dtma.dtma_mcp_group).
  - The current state is read with C(GET /mcp/status); a server already in the wanted state is left alone and the
    task reports no change. Check mode predicts the change from that state.
  - Restarts go through the agent's restart limit (by default at most three per server in five minutes and one
    every 30 seconds); a refused restart fails the task with the agent's reason and when to retry.
options:
  name:
    description: The server's instance name (its container name, C(instanceNameOnToolbox) in the group spec).
    type: str
    required: true
  state:
    description:
      - V(started) makes the server's container run; V(stopped) stops it (the group keeps it, a later
        M(agentopia.dtma.dtma_mcp_group) run with O(agentopia.dtma.dtma_mcp_group#module:state=present) starts it again).
      - V(restarted) restarts it and always reports a change.
    type: str
    choices: [started, stopped, restarted]
    default: started
  stop_timeout:
    description:
      - Seconds the container gets to stop before it is killed, for V(stopped) and V(restarted) (the name
        C(community.docker.docker_container) uses; the shared O(timeout) option is the time to wait for the agent's
        answer, and the module waits this long on top of it).
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
    details: The change is predicted from the state C(GET /mcp/status) reports; nothing is started, stopped or restarted.
  diff_mode:
    support: full
    details: The diff shows the server's state before and after.
  platform:
    support: full
    platforms: posix
  idempotent:
    support: partial
    details: V(started) and V(stopped) are idempotent; V(restarted) restarts and reports a change every time.
notes:
  - Starting and stopping use the agent routes C(POST /mcp/servers/<name>/start) and C(/stop); an agent without
    them makes the task fail and say so.
seealso:
  - module: agentopia.dtma.dtma_mcp_group
author:
  - Agentopia engineering (@agentopia)
'''

EXAMPLES = r'''
- name: Operate one MCP server
  hosts: droplets
  gather_facts: false
  module_defaults:
    group/agentopia.dtma.dtma:
      url: "http://{{ ansible_host }}:30000"
      token: "{{ dtma_token }}"
  tasks:
    - name: Stop a server for maintenance, giving it 30 seconds
      agentopia.dtma.dtma_mcp_server:
        name: acct-42-github
        state: stopped
        stop_timeout: 30
      delegate_to: localhost

    - name: Start it again
      agentopia.dtma.dtma_mcp_server:
        name: acct-42-github
        state: started
      delegate_to: localhost

- name: Restart a server (fails when the agent's restart limit is reached)
  agentopia.dtma.dtma_mcp_server:
    name: acct-42-github
    state: restarted
  delegate_to: localhost
  register: restart
  failed_when: restart is failed and restart.retry_after is not defined
'''

RETURN = r'''
server:
  description:
    - The server as the agent reports it after the task (before it, in check mode), as in C(GET /mcp/status).
  returned: success
  type: dict
  contains:
    name:
      description: The server's instance name.
      type: str
      sample: acct-42-github
    group_id:
      description: The group the server belongs to.
      type: str
      sample: acct-42
    container_id:
      description: The container's id.
      type: str
      sample: 3f2a9c0d1b7e4e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f
    image:
      description: The container's image.
      type: str
      sample: ghcr.io/example/github-mcp:1.4.0
    state:
      description: The container's state (V(running), V(exited), V(created), ...).
      type: str
      sample: running
    ports:
      description: Published and exposed ports.
      type: list
      elements: dict
      sample: [{container_port: 8080, protocol: tcp, host_ip: 0.0.0.0, host_port: 31001}]
    mcp_transport:
      description: The MCP transport.
      type: str
      sample: streamable-http
    mcp_endpoint_path:
      description: The MCP endpoint path.
      type: str
      sample: /mcp
state:
  description: The container's state after the task (in check mode, the predicted one).
  returned: success
  type: str
  sample: exited
previous_state:
  description: The container's state before the task.
  returned: success
  type: str
  sample: running
retry_after:
  description: When a restart was refused by the agent's restart limit, seconds until it is allowed again.
  returned: when a restart was rate limited (the task fails)
  type: int
  sample: 28
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaNotFound, DtmaRateLimited
from ansible_collections.agentopia.dtma.plugins.module_utils._common import Manager, argument_spec

# Docker states in which the container counts as running (stopping it is a change).
_RUNNING = ("running", "restarting", "paused")
_KEEP = ("name", "group_id", "container_id", "image", "state", "status", "ports", "mcp_transport", "mcp_endpoint_path",
         "account_tool_instance_id", "created")
_PAST = {"start": "started", "stop": "stopped", "restart": "restarted"}


def server_view(view):
    return dict((k, view.get(k)) for k in _KEEP)


class ServerManager(Manager):
    """One MCP server: look it up, then started() / stopped() / restarted()."""

    def __init__(self, module, client=None):
        super(ServerManager, self).__init__(module, client)
        self.name = self.params["name"]
        self.grace = self.params["stop_timeout"]

    def subject(self):
        return "MCP server %s" % self.name

    def lookup(self):
        for view in self.client.mcp_servers():
            if view.get("name") == self.name:
                return view
        self.fail("no MCP server named %s is managed by the DTMA agent at %s; GET /mcp/status lists the servers, "
                  "agentopia.dtma.dtma_mcp_group deploys them" % (self.name, self.client.base_url))
        return None

    def call(self, action):
        """The agent's answer to start, stop or restart (data: the server view, changed for start and stop)."""
        try:
            return self.client.server_action(self.name, action, self.grace)
        except DtmaNotFound as exc:
            if "error" not in exc.body:  # the framework's 404 for a route it does not have, not the agent's answer
                self.fail("the DTMA agent at %s has no route POST /mcp/servers/<name>/%s; upgrade the agent to one "
                          "that can %s MCP servers" % (self.client.base_url, action, action), exc)
            self.fail("MCP server %s disappeared before it could be %s: %s" % (self.name, _PAST[action], exc.message), exc)
        except DtmaRateLimited as exc:
            self.fail("MCP server %s was not restarted: the agent's restart limit refused it (%s); retry after %s seconds"
                      % (self.name, exc.body.get("message") or exc.message, exc.retry_after), exc)
        return None

    def started(self):
        self.converge("start", lambda previous: previous != "running", lambda previous: "running")

    def stopped(self):
        self.converge("stop", lambda previous: previous in _RUNNING,
                      lambda previous: "exited" if previous in _RUNNING else previous)

    def restarted(self):
        self.converge("restart", lambda previous: True, lambda previous: "running")

    def converge(self, action, needed, predict):
        before = self.lookup()
        previous = before.get("state")
        changed = needed(previous)
        self.result.update(changed=changed, previous_state=previous, state=predict(previous) if changed else previous,
                           server=server_view(before))
        if self.module._diff:
            self.result["diff"] = {"before": {"name": self.name, "state": previous},
                                   "after": {"name": self.name, "state": self.result["state"]}}
        if not changed or self.check_mode:
            return
        body = self.call(action)
        after = body.get("data") or {}
        if not after.get("state"):  # an answer without the server view: read it back
            after = self.lookup()
        if action != "restart" and isinstance(body.get("changed"), bool):
            changed = body["changed"]  # the agent compared the states itself; someone may have been quicker
        self.result.update(changed=changed, server=server_view(after), state=after.get("state"))
        if self.module._diff:
            self.result["diff"]["after"]["state"] = after.get("state")
        if action != "stop" and after.get("state") != "running":
            self.fail("MCP server %s was %s but its container is %s; see its logs (GET /mcp/servers/%s/logs)"
                      % (self.name, _PAST[action], after.get("state"), self.name))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            state=dict(type="str", default="started", choices=["started", "stopped", "restarted"]),
            stop_timeout=dict(type="int", default=10, aliases=["graceful_timeout"]),
        ),
        supports_check_mode=True,
    )
    ServerManager(module).run()


if __name__ == "__main__":
    main()
