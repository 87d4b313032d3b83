# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # The agent connection, shared by every module of the collection.
    DOCUMENTATION = r'''
options:
  url:
    description:
      - Base URL of the DTMA agent, for example V(http://203.0.113.10:30000). It must start with V(http://) or
        V(https://); a URL without one fails the task (M(agentopia.dtma.dtma_info) reports it as its agent
        check instead).
      - If not set, the environment variable E(DTMA_URL) is used (AWX injects it from the DTMA credential type).
    type: str
  token:
    description:
      - Bearer token of the agent (its E(DTMA_BEARER_TOKEN) or E(BACKEND_TO_DTMA_API_KEY)).
      - If not set, the environment variable E(DTMA_BEARER_TOKEN) is used. Never logged.
    type: str
  timeout:
    description:
      - Seconds to wait for one answer from the agent.
      - If not set, the environment variable E(DTMA_TIMEOUT) is used.
    type: int
    default: 30
  validate_certs:
    description:
      - Verify the agent's TLS certificate when O(url) is C(https://).
      - If not set, the environment variable E(DTMA_VALIDATE_CERTS) is used.
    type: bool
    default: true
  ca_path:
    description:
      - A CA bundle (PEM) to verify the agent's certificate with, instead of the system store.
      - If not set, the environment variable E(DTMA_CA_PATH) is used (AWX injects it from the DTMA credential
        type's CA certificate).
    type: path
notes:
  - "The modules run on the controller and talk to the agent over HTTP; use C(delegate_to: localhost) or
    C(connection: local) and build O(url) from the inventory, for example C(http://{{ ansible_host }}:30000)."
  - "Set the connection options once for a play with C(module_defaults) and the action group
    C(group/agentopia.dtma.dtma)."
requirements:
  - requests
'''

    # The modules' own SSH connection, used when the agent does not answer; deprecated.
    SSH = r'''
options:
  ssh_host:
    description:
      - Host to reach over SSH when the agent does not answer. Required for the SSH fallback.
      - B(Deprecated), like every C(ssh_*) option; they will be removed in 1.0.0. They open a second SSH connection
        with options of its own, beside the host's Ansible connection. Reach the host through its own connection
        instead (its user, key, port, jump host, C(become)), with a C(block) whose C(rescue) runs the fallback on
        the host, as C(playbooks/restart.yml) and C(playbooks/redeploy.yml) do (see the examples).
    type: str
  ssh_port:
    description: SSH port. Deprecated (see O(ssh_host)).
    type: int
    default: 22
  ssh_user:
    description: SSH user. Deprecated (see O(ssh_host)).
    type: str
    default: root
  ssh_key_file:
    description: Private key file for SSH authentication. Deprecated (see O(ssh_host)).
    type: path
  ssh_host_key_checking:
    description:
      - Verify the host key against the known hosts (the user's and O(ssh_known_hosts_file)); an unknown
        host is refused.
      - Set to V(false) only for throw-away hosts; the key is then accepted without verification.
      - Deprecated (see O(ssh_host)).
    type: bool
    default: true
  ssh_known_hosts_file:
    description: An extra known_hosts file to verify the host key with. Deprecated (see O(ssh_host)).
    type: path
  ssh_connect_timeout:
    description: Seconds to wait for the SSH connection. Deprecated (see O(ssh_host)).
    type: int
    default: 10
  ssh_command_timeout:
    description:
      - Seconds a command over SSH may run (without sending anything); then the task fails.
      - When not set, 60; for M(agentopia.dtma.dtma_exec), its O(agentopia.dtma.dtma_exec#module:command_timeout)
        plus O(ssh_connect_timeout).
      - Deprecated (see O(ssh_host)).
    type: int
requirements:
  - paramiko (for the SSH fallback)
'''

    # Attributes every module has; each module states its own support for idempotent.
    ATTRIBUTES = r'''
attributes:
  action_group:
    description: Use C(group/agentopia.dtma.dtma) in C(module_defaults) to set the connection options.
    support: full
    membership:
      - agentopia.dtma.dtma
  idempotent:
    description: Running the task twice with the same options reports no change the second time.
'''
