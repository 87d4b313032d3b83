"""One managed container brought to its spec: what is observed, the one decision of what to do about it, doing it
without losing the old container, and the readiness check that decides whether it worked.

Tools and MCP servers both go through here, and `/tools/validate` and `/mcp/validate` report `decide()`'s answer,
so a plan and the apply after it cannot disagree.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


from . import containers
from . import docker_state as ds
from .errors import ApiError
from .mcp_probe import HTTP_TRANSPORTS, probe
from .sdk import docker

# Docker's own notion of a container that settled: its restart back-off resets after 10 s of running
RESTART_SETTLED_S = 10.0
PARKED = "-dtma-old-"        # <name>-dtma-old-<12 hex>: the old container kept aside during a recreate
LOG_LINES = 20               # log lines returned with a container that did not become ready
_POLL_S = 0.2


def parked_name(name: str, container_id: str) -> str:
    return f"{name}{PARKED}{container_id[:12]}"


def parked_owner(container_name: str) -> str | None:
    """The name a kept-aside container belongs to, or None when it is not one."""
    match = re.fullmatch(rf"(.+){PARKED}[0-9a-f]{{12}}", container_name)
    return match.group(1) if match else None


@dataclass
class Desired:
    name: str
    kind: str
    config: dict
    image: str
    image_id: str | None          # the local image's id, None when it must be pulled
    group: str | None = None
    transport: str = ""
    endpoint: str = "/mcp"
    mcp_port: str | None = None
    pull_policy: str = "missing"                  # missing | always | never (schemas.PullPolicy)
    auth: Any = None                              # schemas.RegistryAuth for the pull; never in a view or a log
    field: str = "dockerImageUrl"                 # how the caller names these fields in errors
    name_field: str = "instanceNameOnToolbox"
    ports_field: str = "portBindings"
    auth_field: str = "registryAuth"
    policy_field: str = "pullPolicy"

    @property
    def config_hash(self) -> str:
        return self.config["Labels"][ds.CONFIG_HASH]


@dataclass
class Observed:
    view: dict
    restart_count: int = 0
    exit_code: int | None = None
    started_at: float | None = None   # epoch seconds of the last start
    labels: dict = field(default_factory=dict)
    parked: bool = False              # found only kept aside: the apply renames it back first

    @property
    def state(self) -> str:
        return self.view["state"]


def _epoch(text: str | None) -> float | None:
    if not text or text.startswith("0001-"):
        return None
    return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()


def observe(api, view: dict, parked: bool = False) -> Observed | None:
    """The container's state with what the list does not give: restart count, exit code, last start."""
    try:
        details = api.inspect_container(view["container_id"])
    except docker.errors.NotFound:
        return None
    state = details["State"]
    view = {**view, "state": state["Status"]}
    return Observed(view, details.get("RestartCount", 0), exit_code(api, details), _epoch(state.get("StartedAt")),
                    details["Config"].get("Labels") or {}, parked)


def exit_code(api, details: dict) -> int | None:
    """The exit code of the container's last exit. Docker resets State.ExitCode to 0 when its restart policy starts
    the container again, so for a crash-looping container seen running, the code is read from its last `die` event."""
    state = details["State"]
    if state.get("Status") != "running" or not details.get("RestartCount"):
        return state.get("ExitCode")
    try:
        events = api.events(since=f"{(_epoch(details.get('Created')) or 0) - 1:.9f}", until=f"{time.time():.9f}",
                            filters={"container": details["Id"], "event": "die"}, decode=True)
        codes = [e.get("Actor", {}).get("Attributes", {}).get("exitCode") for e in events]
    except docker.errors.APIError:
        return state.get("ExitCode")
    codes = [int(c) for c in codes if c is not None and str(c).lstrip("-").isdigit()]
    return codes[-1] if codes else state.get("ExitCode")


def decide(current: Observed | None, want: Desired, settle_s: float, now: float | None = None) -> tuple[str, str]:
    """The action (create, recreate, start, unchanged, conflict) and its reason, from the observed state alone."""
    if current is None:
        return "create", "not deployed"
    view = current.view
    if not ds.is_ours(current.labels, want.kind, want.group):
        return "conflict", f"the name is used by {ds.owner_of(current.labels)}"
    restored = " (restored from an interrupted recreate)" if current.parked else ""
    wanted_labels = {k: v for k, v in want.config["Labels"].items() if k != ds.CONFIG_HASH}
    changed_labels = sorted(k for k, v in wanted_labels.items() if (current.labels.get(k) or "") != (v or ""))
    if changed_labels:
        return "recreate", f"labels differ from the spec: {', '.join(changed_labels)}{restored}"
    if current.view["config_hash"] != want.config_hash:
        return "recreate", "configuration changed" + restored
    if want.image_id and view["image_id"] != want.image_id:
        return "recreate", "image changed" + restored
    state = current.state
    if state == "running":
        up = (now or time.time()) - (current.started_at or 0)
        if current.restart_count and up < max(settle_s, RESTART_SETTLED_S):
            return "recreate", (f"crash-looping: restarted {current.restart_count} times, last {up:.1f}s ago"
                                f"{_exit(current)}{restored}")
        return ("start", "restored from an interrupted recreate") if current.parked else ("unchanged", "up to date")
    if state == "restarting":
        return "recreate", f"crash-looping: restarting after {current.restart_count} restarts{_exit(current)}{restored}"
    if state in ("created", "exited", "paused"):
        why = {"created": "created but never started", "paused": "paused"}.get(state, f"exited{_exit(current)}")
        return "start", f"container is {why}{restored}"
    return "recreate", f"container is {state}{restored}"  # dead or removing: it cannot be started again


def _exit(current: Observed) -> str:
    return f" (exit code {current.exit_code})" if current.exit_code is not None else ""


@dataclass
class Readiness:
    settle_s: float
    ready_timeout_s: float | None = None   # None: no MCP probe, the container running through the settle window is all


class NotReady(ApiError):
    """A container that did not run for the settle window or did not answer MCP; its facts are in the body."""


def _details(api, container_id: str) -> dict | None:
    try:
        return api.inspect_container(container_id)
    except docker.errors.NotFound:
        return None


def probe_url(details: dict, port: str | None, path: str | None) -> str | None:
    """Where the agent reaches an MCP server: the container's own address, else a port published on loopback."""
    if not port:
        return None
    path = path or "/mcp"
    settings = details.get("NetworkSettings") or {}
    for net in (settings.get("Networks") or {}).values():
        if net.get("IPAddress"):
            return f"http://{net['IPAddress']}:{port}{path}"
    for binding in (settings.get("Ports") or {}).get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return f"http://127.0.0.1:{binding['HostPort']}{path}"
    return None


def not_ready(api, container_id: str, why: str, seen: dict | None = None) -> NotReady:
    """The failure of a container that is not ready, with its facts: the state it was seen in, its last exit code,
    its restart count and its last log lines."""
    details = _details(api, container_id) or seen or {"State": {"Status": "removed"}}
    seen = seen or details
    try:
        lines = containers.read_logs(api, container_id, LOG_LINES)
    except docker.errors.APIError:
        lines = []
    facts = {"state": seen["State"].get("Status"), "exit_code": exit_code(api, details) if "Id" in details else None,
             "restart_count": details.get("RestartCount", 0), "logs": lines}
    tail = " | ".join(lines[-3:]) or "none"
    message = (f"{why} (state {facts['state']}, exit code {facts['exit_code']}, "
               f"{facts['restart_count']} restarts); last log lines: {tail}")
    return NotReady(422, "not ready", message, **facts)


def wait_ready(api, want: Desired, container_id: str, readiness: Readiness) -> dict:
    """Running for the whole settle window without a restart, then, when a ready timeout is given and it speaks MCP
    over HTTP on a known port, answering MCP within it. Returns the probe's result, if
    any; raises NotReady with the container's facts."""
    details = _details(api, container_id)
    if details is None:
        raise not_ready(api, container_id, "the container disappeared")
    # Docker resets RestartCount when a container is started by request: any restart since is a crash
    started_at = details["State"].get("StartedAt")
    deadline = time.monotonic() + readiness.settle_s
    while True:
        if details is None or details["State"]["Status"] != "running" or details.get("RestartCount", 0) or \
                details["State"].get("StartedAt") != started_at:
            raise not_ready(api, container_id,
                            f"the container did not stay up for the {readiness.settle_s:g}s settle window", details)
        if time.monotonic() >= deadline:
            break
        time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        details = _details(api, container_id)
    if want.transport not in HTTP_TRANSPORTS or readiness.ready_timeout_s is None:
        return {}
    url = probe_url(details, want.mcp_port, want.endpoint)
    if url is None:
        return {"ok": None, "reason": "no MCP port is known for this server (no portBindings)"}
    result = probe(url, want.transport, retry_for=readiness.ready_timeout_s, server=want.name)
    if result["ok"] is False:
        raise not_ready(api, container_id, f"the MCP probe of {url} failed: {result.get('error')}", details)
    return result


@dataclass
class Step:
    """One decided action on one container, as `/…/validate` shows it and the apply does it."""
    name: str
    action: str                  # create | recreate | start | unchanged | clean | remove | conflict
    reason: str = ""
    want: Desired | None = None
    current: Observed | None = None
    leftovers: list = field(default_factory=list)   # kept-aside containers of this name to remove

    @property
    def pulls(self) -> bool:
        """Whether applying this step pulls the image: always with pullPolicy always (before planning again with the
        pulled image, see pull_first), and for a create or recreate whose image is not on the host."""
        if self.want is None or self.action in ("remove", "conflict"):
            return False
        return self.want.pull_policy == "always" or (self.want.image_id is None and self.action in ("create", "recreate"))

    def view(self) -> dict:
        reason = self.reason
        if self.want is not None and self.want.pull_policy == "always" and self.action not in ("remove", "conflict"):
            reason += "; the image is pulled first (pullPolicy always) and a pulled image that differs recreates it"
        return {"name": self.name, "action": self.action, "reason": reason,
                "container_id": self.current.view["container_id"] if self.current else None, "pull": self.pulls}


def plan_one(api, want: Desired, everything: dict, settle_s: float) -> Step:
    """The step for one container name, from the container list (name -> view) and an inspect of what is there.
    A container kept aside by an interrupted recreate stands in for a missing one; extra kept-aside ones go."""
    parked = [v for n, v in everything.items() if parked_owner(n) == want.name
              and v["kind"] == want.kind and v["group_id"] == want.group]
    parked.sort(key=lambda v: v["created"] or 0, reverse=True)
    current, leftovers = None, parked
    if want.name in everything:
        current = observe(api, everything[want.name])
    elif parked:
        current, leftovers = observe(api, parked[0], parked=True), parked[1:]
    action, reason = decide(current, want, settle_s)
    if leftovers and action != "conflict":
        if action == "unchanged":
            action, reason = "clean", "up to date"
        reason += f"; {len(leftovers)} container(s) kept aside by an interrupted recreate are removed"
    return Step(want.name, action, reason, want, current, [v["container_id"] for v in leftovers])


def pull_first(api, wants: list) -> None:
    """The apply's first step for pullPolicy always: pull each such image once (with the first credentials given for
    it), so that the plan made next compares the pulled image with what runs. A refused pull raises its 422 before
    anything is changed. The plan (`/…/validate`) cannot do this: a pull changes the host."""
    pulled: set = set()
    for want in wants:
        if want.pull_policy == "always" and want.image not in pulled:
            containers.pull(api, want.image, want.field, want.auth, want.auth_field)
            pulled.add(want.image)


def require_local(want: Desired) -> None:
    """pullPolicy never: the image must be on the host already; otherwise a 422 before anything is planned."""
    if want.pull_policy == "never" and want.image_id is None:
        raise ApiError(422, "image unavailable", f"{want.policy_field}: image {want.image!r} is not present on this host "
                       "and pullPolicy is never; load or pull it there first, or use pullPolicy missing",
                       field=want.policy_field)


OUTCOME = {"create": "created", "recreate": "recreated", "start": "started", "unchanged": "unchanged",
           "clean": "cleaned", "remove": "removed"}


def apply(api, step: Step, readiness: Readiness) -> dict:
    """Do one step; the result names the outcome, or `failed` with the error and, for a container that did not
    become ready, its state, exit code, restart count and last log lines. Raises nothing for Docker's or the
    caller's errors: they are the result."""
    started = time.monotonic()
    out = {"name": step.name, "outcome": OUTCOME.get(step.action, "failed"), "reason": step.reason}
    try:
        if step.action == "conflict":
            raise ApiError(409, "name conflict", f"{step.name}: {step.reason}")
        for container_id in step.leftovers:
            containers.remove(api, container_id, force=True)
        if step.current is not None and step.current.parked:
            api.rename(step.current.view["container_id"], step.name)
        out.update(_do(api, step, readiness))
    except ApiError as exc:
        out.update(outcome="failed", status=exc.status, error=exc.error, message=exc.message, **exc.extra)
    except docker.errors.APIError as exc:
        out.update(outcome="failed", status=502, error="docker error", message=str(exc.explanation or exc))
    out["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    return out


def _do(api, step: Step, readiness: Readiness) -> dict:
    want = step.want
    existing = step.current.view["container_id"] if step.current else None
    if step.action in ("unchanged", "clean"):
        return {"container_id": existing}
    if step.action == "remove":
        containers.remove(api, existing, force=True)
        return {"container_id": existing}
    if step.action == "start":
        try:
            if step.current.state == "paused":
                api.unpause(existing)
            else:
                api.start(existing)
        except docker.errors.APIError as exc:
            if containers.is_port_clash(exc):
                raise ApiError(409, "port conflict", f"{step.name}: a host port is already in use: {exc.explanation}") from None
            raise
        return _ready(api, want, existing, readiness)
    containers.ensure_image(api, want.image, want.field, want.auth, want.auth_field)
    if step.action == "create":
        return _create_ready(api, want, readiness)
    return _replace(api, step, readiness)


def _ready(api, want: Desired, container_id: str, readiness: Readiness) -> dict:
    probed = wait_ready(api, want, container_id, readiness)
    return {"container_id": container_id, **({"probe": probed} if probed else {})}


def _create_ready(api, want: Desired, readiness: Readiness) -> dict:
    """Create, start and wait until ready; a container that does not become ready is removed, its facts returned."""
    new_id = containers.create_and_start(api, want.name, want.config, want.name_field, want.ports_field)
    try:
        return _ready(api, want, new_id, readiness)
    except ApiError:
        containers.remove(api, new_id, force=True)
        raise


def _replace(api, step: Step, readiness: Readiness) -> dict:
    """Recreate with the old container kept aside, stopped, until the new one is ready; when the new one fails,
    it is removed and the old one restored under its name and in its state."""
    old = step.current.view
    if step.current.state in ("dead", "removing"):  # nothing to restore: Docker can only remove it
        containers.remove(api, old["container_id"], force=True)
        return _create_ready(api, step.want, readiness)
    was_running = step.current.state in ("running", "restarting", "paused")
    if step.current.state == "paused":
        api.unpause(old["container_id"])
    if was_running:
        api.stop(old["container_id"], timeout=10)
    api.rename(old["container_id"], parked_name(step.name, old["container_id"]))
    try:
        result = _create_ready(api, step.want, readiness)
    except ApiError as exc:
        api.rename(old["container_id"], step.name)
        if was_running:
            api.start(old["container_id"])
        exc.message += "; the previous container was restored"
        raise
    containers.remove(api, old["container_id"], force=True)
    return result
