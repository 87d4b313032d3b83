#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: dtma_tool
short_description: Deploy, start, stop, restart or remove a tool container through the DTMA agent
version_added: 0.1.0
description:
  - Manages one tool instance (a container labelled C(agentopia.kind=tool)) on a host running the DTMA agent,
    through the agent's C(/tools) routes.
  - The module asks the agent for a plan first (C(POST /tools/validate)), which compares the full Docker create
    configuration (image, account tool instance id, O(config), O(env)), the local image and the container's state
    with what runs. The agent then applies exactly that plan (C(PUT /tools/{name})). A tool whose configuration or
    image changed, or that is crash-looping, is recreated; the old container is kept aside, stopped, until the new
    one is ready and is restored when the new one fails. An unchanged tool is left alone. Then the run state is
    brought to O(state) with C(POST /tools/{name}/start|stop|restart).
  - A created, recreated or started tool counts only when its container runs for the agent's settle window
    (O(settle)) without a restart; otherwise the task fails with its exit code, restart count and last log lines.
  - When O(image) is not given, the configuration is not managed at all; the module only changes the run state
    of the existing tool (or removes it), and fails if the tool does not exist.
  - The agent refuses configurations that grant host access (privileged, host namespaces, host-path mounts, the
    Docker socket, added capabilities, devices); the module then fails with the agent's message naming the key.
options:
  name:
    description:
      - Name of the tool instance, which is also the container name (the agent's C(instanceNameOnToolbox)).
      - Letters, digits, C(_), C(.) and C(-), starting with a letter or digit.
    type: str
    required: true
  image:
    description:
      - Docker image of the tool (the agent's C(dockerImageUrl)). Whether the agent pulls it is O(pull).
      - Required to create the tool. When given, the whole configuration is compared and the tool is recreated
        if it differs, or if the image reference now names another image.
      - When omitted, only the run state of the existing tool is managed.
    type: str
  pull:
    description:
      - When the agent pulls O(image) (the agent's C(pullPolicy)), as C(community.docker.docker_container)'s
        O(community.docker.docker_container#module:pull) does.
      - V(missing) - only when no local image has that reference; a local image is used as it is, so a moving tag
        such as C(:latest) is not refreshed.
      - V(always) - on every run that gives O(image) (also when nothing else changed); a tool whose pulled image
        differs from the one its container runs is recreated, one whose image did not change is left alone. Check
        mode cannot know what the registry holds without pulling, which would change the host; it shows the plan for
        the local image, marked with C(pull=true) (see RV(plan)), so a run that pulls a new image can change more
        than check mode said.
      - V(never) - the image must be present on the host; when it is not, the task fails (HTTP 422 naming O(pull))
        and nothing is changed.
    type: str
    choices: [missing, always, never]
    default: missing
  registry_auth:
    description:
      - Credentials for the registry of a private O(image), passed to Docker with the pull (its C(auth_config), the
        agent's C(registryAuth)); never stored, logged or returned by the agent.
      - A registry that refuses them fails the task (HTTP 422 naming O(registry_auth)); nothing is changed.
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
        description: The registry, for example V(registry.example.com:5000); by default the registry named in O(image).
        type: str
  account_tool_instance_id:
    description:
      - The backend's account tool instance id, stored as a label of the container.
      - Required to create the tool. When omitted, the existing tool's id is kept.
    type: str
  config:
    description:
      - >-
        A Docker container-create configuration merged into the agent's (the agent's C(baseConfigOverrideJson)),
        for example C({Cmd: [sleep, "3600"]}) or C({HostConfig: {PortBindings: {"8080/tcp": [{HostPort: "31001"}]}}}).
      - Omitting it while O(image) is given means no override, so a tool deployed with one is recreated without it.
      - This option is logged like any other. Do not put secrets in C(config.Env); use O(env), which is never logged.
    type: dict
  env:
    description:
      - Environment variables of the tool, a dictionary of names and values. They are merged into C(config.Env) (these values
        win over a variable of the same name there).
      - The values are never logged or returned (C(no_log)). They are part of the configuration, so changing one
        recreates the tool; the config hash in the diff shows that something changed, not what.
    type: dict
  state:
    description:
      - V(started) - the tool exists with this configuration and runs.
      - V(present) - the tool exists with this configuration; the run state of an existing tool is left as it is.
        A tool that is created or recreated is started (the agent starts what it deploys).
      - V(stopped) - the tool exists with this configuration and does not run. A tool that has to be created is
        deployed (which starts it) and then stopped.
      - V(restarted) - like V(started), and the tool is restarted, which is always a change. A tool created or
        recreated by this task was just started and is not restarted again.
      - V(absent) - the tool is stopped (within O(stop_timeout)) and removed. Removing a tool that does not exist
        is not a change.
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: started
  stop_timeout:
    description:
      - Seconds the tool gets to stop gracefully (stop, restart and removal) before it is killed (the name
        C(community.docker.docker_container) uses; the module waits this long on top of O(timeout)).
      - The alias O(graceful_timeout) is the name M(agentopia.dtma.dtma_mcp_group) and M(agentopia.dtma.dtma_mcp_server)
        used for it before; it is the same option.
    type: int
    default: 10
    aliases: [graceful_timeout]
  settle:
    description:
      - Seconds a created, recreated or started container must run without a restart to count as deployed (the
        agent's C(settleSeconds), 0 to 60). The agent's own default (C(DTMA_SETTLE_S), 3 seconds) when not given.
    type: float
extends_documentation_fragment:
  - agentopia.dtma.connection
  - agentopia.dtma.connection.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The agent's plan (C(POST /tools/validate)) and the tool's current state predict every action; nothing is changed.
  diff_mode:
    support: full
    details: The diff shows the tool's image, run state and config hash before and after.
  platform:
    support: full
    platforms: posix
  idempotent:
    support: partial
    details: Every state but V(restarted) reports no change when run again with the same options; V(restarted) always restarts.
author:
  - Agentopia engineering (@agentopia)
'''

EXAMPLES = r'''
- name: Run a tool container on every droplet
  agentopia.dtma.dtma_tool:
    name: weather-tool
    image: ghcr.io/agentopia/weather-tool:1.4.2
    account_tool_instance_id: ati-5f1c
    config:
      HostConfig:
        PortBindings:
          8080/tcp:
            - HostPort: "31001"
    env:
      WEATHER_API_KEY: "{{ weather_api_key }}"
  delegate_to: localhost
  module_defaults:
    group/agentopia.dtma.dtma:
      url: "http://{{ ansible_host }}:30000"
      token: "{{ dtma_token }}"

- name: A private image, pulled on every run so that a moved tag is deployed
  agentopia.dtma.dtma_tool:
    name: search-tool
    image: registry.example.com:5000/tools/search:stable
    pull: always
    registry_auth:
      username: deploy
      password: "{{ vault_registry_password }}"
    account_tool_instance_id: ati-77e0
  delegate_to: localhost

- name: Stop it (configuration not managed because image is not given)
  agentopia.dtma.dtma_tool:
    name: weather-tool
    state: stopped
  delegate_to: localhost

- name: Restart it
  agentopia.dtma.dtma_tool:
    name: weather-tool
    state: restarted
    stop_timeout: 30
  delegate_to: localhost

- name: Remove it
  agentopia.dtma.dtma_tool:
    name: weather-tool
    state: absent
  delegate_to: localhost
'''

RETURN = r'''
tool:
  description:
    - The tool as the agent reports it after the task (in check mode, as it is now).
    - V(null) when the tool does not exist (after O(state=absent), or in check mode before it is created).
  returned: always
  type: dict
  sample:
    container_id: 0c5e4d1b2a3f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d
    name: weather-tool
    instance_name_on_toolbox: weather-tool
    account_tool_instance_id: ati-5f1c
    image: ghcr.io/agentopia/weather-tool:1.4.2
    ports: [{container_port: 8080, protocol: tcp, host_ip: 0.0.0.0, host_port: 31001}]
    state: running
    status: Up 2 seconds
    config_hash: 3f9a1c2b4d5e6f70
  contains:
    container_id:
      description: Docker container id.
      type: str
    name:
      description: The tool's name (the container name, O(name)).
      type: str
    instance_name_on_toolbox:
      description:
        - The tool's name, as C(name).
        - Deprecated, use C(name); returned as well until 1.0.0.
      type: str
    account_tool_instance_id:
      description: The account tool instance id label.
      type: str
    image:
      description: The image reference the container was created from.
      type: str
    ports:
      description: Published and exposed ports.
      type: list
      elements: dict
    state:
      description: Docker's state of the container (V(running), V(exited), V(created), ...).
      type: str
    status:
      description: Docker's status text.
      type: str
    config_hash:
      description: Hash of the full create configuration the container was created with.
      type: str
actions:
  description:
    - What the task did, in order (in check mode, what it would do).
    - Any of V(created), V(recreated), V(cleaned), V(started), V(stopped), V(restarted), V(removed); empty when
      nothing changed.
  returned: always
  type: list
  elements: str
  sample: [recreated, stopped]
plan:
  description:
    - The agent's plan for the configuration (C(POST /tools/validate)); absent when O(image) is not given or
      O(state=absent).
  returned: when O(image) is given and O(state) is not V(absent)
  type: dict
  sample: {name: weather-tool, action: recreate, reason: configuration changed, container_id: 0c5e4d1b2a3f,
           state: running, config_hash: 3f9a1c2b4d5e6f70, current_config_hash: 77aa0e1b2c3d4e5f, pull: false}
  contains:
    action:
      description:
        - V(create), V(recreate), V(start), V(unchanged), V(clean) (containers kept aside by an interrupted recreate
          are removed) or V(conflict).
        - V(start) is applied only with O(state=started) or O(state=restarted).
      type: str
    reason:
      description: Why, for example V(configuration changed) or V(image changed).
      type: str
    pull:
      description:
        - Whether the apply pulls the image first (O(pull=always), or a missing image with V(missing)). With
          V(always) the action is the one for the local image; a pulled image that differs makes the apply recreate
          the tool.
      type: bool
diff:
  description: Image, run state and config hash of the tool before and after (V(absent) when it does not exist).
  returned: when diff mode is on
  type: dict
  sample: {before: {image: local/busybox:latest, state: running, config_hash: 77aa0e1b2c3d4e5f},
           after: {image: local/busybox:latest, state: exited, config_hash: 77aa0e1b2c3d4e5f}}
'''

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.agentopia.dtma.plugins.module_utils._api import DtmaError, DtmaNotFound
from ansible_collections.agentopia.dtma.plugins.module_utils._common import IMAGE_ARGS, Manager, argument_spec, image_fields

RUNNING = ("running", "restarting")
# states in which "stopped" holds: the container's process does not run
NOT_RUNNING = ("exited", "created", "dead")
# the agent's planned action (and outcome) and what the task reports once it is done
PAST = {"create": "created", "recreate": "recreated", "start": "started", "clean": "cleaned"}
OUTCOMES = ("created", "recreated", "started", "cleaned")
# The agent's field names and the options they come from, to name the option in the agent's messages.
_OPTION_NAMES = {"dockerImageUrl": "image", "instanceNameOnToolbox": "name", "accountToolInstanceId": "account_tool_instance_id",
                 "baseConfigOverrideJson": "config", "pullPolicy": "pull", "registryAuth": "registry_auth",
                 "settleSeconds": "settle"}


def option_names(text):
    """The agent's message with the module's option names (registryAuth: ... -> registry_auth: ...)."""
    return re.sub(r"\b(%s)\b" % "|".join(_OPTION_NAMES), lambda m: _OPTION_NAMES[m.group(1)], text)


def _summary(tool):
    if not tool:
        return {"state": "absent"}
    return {"image": tool.get("image"), "state": tool.get("state"), "config_hash": tool.get("config_hash")}


def tool_view(data):
    """The agent's tool data with `name` (older agents return only the deprecated `instance_name_on_toolbox`)."""
    if not data:
        return data
    view = dict(data)
    view.setdefault("name", view.get("instance_name_on_toolbox"))
    return view


class ToolManager(Manager):
    """One tool: its configuration through the agent's plan, then its run state; present() serves every state but
    absent."""

    HANDLERS = {"started": "present", "stopped": "present", "restarted": "present"}

    def __init__(self, module, client=None):
        super(ToolManager, self).__init__(module, client)
        self.name = self.params["name"]
        self.grace = self.params["stop_timeout"]
        self.actions = []
        self.plan = None
        self.tool = None
        self.predicted = None  # the state after the task, as check mode predicts it
        self.result.update(actions=self.actions, tool=None)

    def check_options(self):
        if self.params["settle"] is not None and not 0 <= self.params["settle"] <= 60:
            self.fail("settle must be between 0 and 60 seconds, got %s" % self.params["settle"])

    def subject(self):
        return "the tool %s" % self.name

    def failed(self, what, exc):
        self.fail("%s: %s" % (what, option_names(exc.message)), exc, tool=self.tool)

    def current(self):
        """The managed tool of this name, or None (one list call: GET /tools/status)."""
        try:
            tools = self.client.tools()
        except DtmaError as exc:
            self.failed("could not read the tools of the DTMA agent", exc)
        return tool_view(next((t for t in tools if t.get("instance_name_on_toolbox") == self.name), None))

    def body(self, existing):
        account = self.params["account_tool_instance_id"] or (existing or {}).get("account_tool_instance_id")
        if not account:
            self.fail("account_tool_instance_id is required to create the tool %s" % self.name)
        config = dict(self.params["config"] or {})
        if self.params["env"]:
            env = list(config.get("Env") or [])
            env.extend("%s=%s" % (key, value) for key, value in self.params["env"].items())
            config["Env"] = env
        body = {"dockerImageUrl": self.params["image"], "instanceNameOnToolbox": self.name,
                "accountToolInstanceId": account}
        if config:
            body["baseConfigOverrideJson"] = config
        body.update(image_fields(self.params))
        if self.params["settle"] is not None:
            body["settleSeconds"] = self.params["settle"]
        return body

    def converge_config(self, existing):
        """Apply the agent's plan (PUT /tools/{name} does exactly what /tools/validate says, after pulling with
        pull=always); return the tool data afterwards (or as it is now)."""
        body = self.body(existing)
        try:
            self.plan = self.client.validate_tool(body)
        except DtmaError as exc:
            self.failed("could not plan the tool %s" % self.name, exc)
        action = self.plan["action"]
        if action == "conflict":
            self.fail("cannot deploy the tool %s: %s; choose another name or remove that container"
                      % (self.name, self.plan["reason"]), plan=self.plan)
        # starting is the run state's business: only states that want it running take it from the plan
        wants_start = self.params["state"] in ("started", "restarted")
        applies = action not in ("unchanged", "start") or (action == "start" and wants_start)
        if not applies and not self.plan.get("pull"):
            return existing
        if applies:
            self.actions.append(PAST[action])
            self.predicted = {"image": self.params["image"], "state": "running", "config_hash": self.plan.get("config_hash")}
        if self.check_mode:
            return existing
        try:
            # start=false: a stopped tool stays stopped unless the state wants it running (the run state is ours)
            answer = self.client.converge_tool(self.name, body, self.grace + (self.params["settle"] or 3), start=wants_start)
        except DtmaError as exc:
            verb = action if applies else "pull the image of"
            self.failed("could not %s the tool %s (%s). The agent said" % (verb, self.name, self.plan["reason"]), exc)
        # the apply's own outcome: with pull=always it may differ from the plan made before the pull
        outcome = answer.get("outcome")
        if outcome in OUTCOMES and outcome not in self.actions:
            del self.actions[:]
            self.actions.append(outcome)
        elif outcome == "unchanged":
            del self.actions[:]
        return tool_view(answer.get("data"))

    def run_action(self, action, past, tool):
        self.actions.append(past)
        self.predicted = dict(self.predicted or _summary(tool), state="exited" if action == "stop" else "running")
        if self.check_mode:
            return tool
        try:
            answer = self.client.tool_action(self.name, action, self.grace)
        except DtmaError as exc:
            self.failed("could not %s the tool %s" % (action, self.name), exc)
        if not answer.get("changed"):
            self.actions.pop()
        return tool_view(answer.get("data")) or tool

    def present(self):
        existing = self.current()
        before = _summary(existing)
        state = self.params["state"]
        if self.params["image"]:
            tool = self.converge_config(existing)
        elif existing is None:
            self.fail("the tool %s does not exist; give image (and account_tool_instance_id) to create it" % self.name)
        else:
            tool = existing
        fresh = any(a in ("created", "recreated", "started") for a in self.actions)  # just now: it runs
        run_state = "running" if fresh else (tool or {}).get("state")
        if state == "started" and run_state not in RUNNING:
            tool = self.run_action("start", "started", tool)
        elif state == "stopped" and run_state not in NOT_RUNNING:
            tool = self.run_action("stop", "stopped", tool)
        elif state == "restarted" and not fresh:
            tool = self.run_action("restart", "restarted", tool)
        self.tool = tool
        after = self.predicted if self.check_mode and self.predicted else _summary(self.tool)
        self.finish(before, after)

    def absent(self):
        existing = self.current()
        before = _summary(existing)
        if existing:
            self.actions.append("removed")
            if not self.check_mode:
                try:
                    self.client.remove_tool(self.name, self.grace)
                except DtmaNotFound:
                    self.actions.pop()  # removed by someone else meanwhile
                except DtmaError as exc:
                    self.failed("could not remove the tool %s" % self.name, exc)
        self.finish(before, {"state": "absent"})

    def finish(self, before, after):
        self.result.update(changed=bool(self.actions), tool=self.tool)
        if self.plan is not None:
            self.result["plan"] = self.plan
        if self.module._diff:
            self.result["diff"] = {"before": before, "after": after}


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            image=dict(type="str"),
            account_tool_instance_id=dict(type="str"),
            config=dict(type="dict"),
            env=dict(type="dict", no_log=True),
            state=dict(type="str", default="started", choices=["present", "started", "stopped", "restarted", "absent"]),
            stop_timeout=dict(type="int", default=10, aliases=["graceful_timeout"]),
            settle=dict(type="float"),
            **IMAGE_ARGS
        ),
        supports_check_mode=True,
        required_by={"config": "image", "env": "image", "registry_auth": "image"},
    )
    ToolManager(module).run()


if __name__ == "__main__":
    main()
