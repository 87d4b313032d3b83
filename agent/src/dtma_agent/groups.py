"""MCP groups: plan and converge a group's containers to a payload, remove a group, and judge its health.

A group is the set of containers labelled with its id; nothing else is remembered between requests.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import docker.errors

from . import containers
from . import docker_state as ds
from .create_config import Scope
from .errors import ApiError
from .mcp_probe import HTTP_TRANSPORTS, probe
from .schemas import GroupDeploy, McpServerSpec

_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def group_lock(group_id: str) -> threading.Lock:
    """Concurrent changes of one group serialize, so they end with exactly one set of containers."""
    with _locks_guard:
        return _locks[group_id]


def network_name(group_id: str) -> str:
    return f"agentopia-mcp-{group_id}"


def desired_config(group: GroupDeploy, server: McpServerSpec) -> dict:
    labels = {
        ds.MANAGED_BY: ds.MANAGED_VALUE, ds.KIND: ds.KIND_MCP, ds.GROUP: group.groupId,
        ds.INSTANCE: server.instanceNameOnToolbox, ds.ACCOUNT_TOOL: server.accountToolInstanceId or "",
        ds.TRANSPORT: server.mcpTransportType, ds.ENDPOINT: server.mcpEndpointPath, ds.MCP_PORT: server.mcp_port or "",
    }
    # its own group's network (even when not shared: then it may not exist and Docker says so) and volumes
    scope = Scope(field=f"servers[{server.instanceNameOnToolbox}].baseConfigOverrideJson",
                  network=network_name(group.groupId), volume_prefix=f"agentopia-mcp-{group.groupId}-")
    shared = group.options.sharedNetworking
    return containers.build_config(
        server.dockerImageUrl, labels, env=server.environmentVariables, port_bindings=server.portBindings,
        resources=server.resourceLimits, network=network_name(group.groupId) if shared else None,
        alias=server.instanceNameOnToolbox, override=server.baseConfigOverrideJson, scope=scope)


@dataclass
class Step:
    name: str
    action: str                  # create | recreate | start | unchanged | remove | conflict
    reason: str = ""
    server: McpServerSpec | None = None
    config: dict = field(default_factory=dict)
    existing: dict | None = None

    def view(self) -> dict:
        return {"name": self.name, "action": self.action, "reason": self.reason,
                "container_id": (self.existing or {}).get("container_id")}


def plan(api, group: GroupDeploy) -> list[Step]:
    """What converging would do, per server; reads Docker, changes nothing."""
    everything = {c["name"]: c for c in (ds.container_view(s) for s in api.containers(all=True))}
    image_ids = {s.dockerImageUrl: containers.local_image_id(api, s.dockerImageUrl,
                                                             f"servers[{s.instanceNameOnToolbox}].dockerImageUrl")
                 for s in group.servers}
    steps = []
    for server in group.servers:
        name = server.instanceNameOnToolbox
        config = desired_config(group, server)
        current = everything.get(name)
        if current is None:
            steps.append(Step(name, "create", "not deployed", server, config))
        elif current["kind"] != ds.KIND_MCP or current["group_id"] != group.groupId:
            owner = (f"group {current['group_id']}" if current["group_id"] else
                     "a tool instance of this agent" if current["kind"] == ds.KIND_TOOL else
                     "a container the agent does not manage")
            steps.append(Step(name, "conflict", f"the name is used by {owner}", server, config, current))
        elif current["config_hash"] != config["Labels"][ds.CONFIG_HASH]:
            steps.append(Step(name, "recreate", "configuration changed", server, config, current))
        elif image_ids[server.dockerImageUrl] and current["image_id"] != image_ids[server.dockerImageUrl]:
            steps.append(Step(name, "recreate", "image changed", server, config, current))
        elif current["state"] != "running":
            steps.append(Step(name, "start", f"container is {current['state']}", server, config, current))
        else:
            steps.append(Step(name, "unchanged", "up to date", server, config, current))
    wanted = {s.instanceNameOnToolbox for s in group.servers}
    for current in everything.values():
        if current["kind"] == ds.KIND_MCP and current["group_id"] == group.groupId and current["name"] not in wanted:
            steps.append(Step(current["name"], "remove", "not in the payload", existing=current))
    return steps


_OUTCOME = {"create": "created", "recreate": "recreated", "start": "started", "unchanged": "unchanged", "remove": "removed"}


def _execute(api, step: Step) -> dict:
    started = time.monotonic()
    out = {"name": step.name, "outcome": _OUTCOME.get(step.action, "failed"), "reason": step.reason}
    try:
        if step.action == "conflict":
            raise ApiError(409, "name conflict", f"{step.name}: {step.reason}")
        if step.action in ("create", "recreate"):
            containers.ensure_image(api, step.server.dockerImageUrl, f"servers[{step.name}].dockerImageUrl")
        if step.action == "create":
            out["container_id"] = containers.create_and_start(api, step.name, step.config, f"servers[{step.name}].instanceNameOnToolbox")
        elif step.action == "recreate":
            out["container_id"] = _replace(api, step)
        elif step.action == "start":
            out["container_id"] = step.existing["container_id"]
            try:
                api.start(step.existing["container_id"])
            except docker.errors.APIError as exc:
                if containers.is_port_clash(exc):
                    raise ApiError(409, "port conflict", f"{step.name}: a host port is already in use: {exc.explanation}") from None
                raise
        elif step.action == "remove":
            containers.remove(api, step.existing["container_id"], force=True)
        else:
            out["container_id"] = step.existing["container_id"]
    except ApiError as exc:
        out.update(outcome="failed", status=exc.status, error=exc.error, message=exc.message)
    except docker.errors.APIError as exc:
        out.update(outcome="failed", status=502, error="docker error", message=str(exc.explanation or exc))
    out["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    return out


def _replace(api, step: Step) -> str:
    """Recreate with the old container kept aside until the new one runs; on failure the old one is restored."""
    old = step.existing
    was_running = old["state"] == "running"
    parked = f"{step.name}-dtma-old-{old['container_id'][:12]}"
    if was_running:
        api.stop(old["container_id"], timeout=10)
    api.rename(old["container_id"], parked)
    try:
        new_id = containers.create_and_start(api, step.name, step.config)
    except ApiError as exc:
        api.rename(old["container_id"], step.name)
        if was_running:
            api.start(old["container_id"])
        exc.message += "; the previous container was restored"
        raise
    containers.remove(api, old["container_id"], force=True)
    return new_id


def _ensure_network(api, group_id: str) -> None:
    name = network_name(group_id)
    if not api.networks(names=[name]):
        api.create_network(name, driver="bridge", check_duplicate=True,
                           labels={ds.MANAGED_BY: ds.MANAGED_VALUE, ds.GROUP: group_id})


def _remove_network(api, group_id: str) -> bool:
    for net in api.networks(names=[network_name(group_id)]):
        if net.get("Name") == network_name(group_id):
            try:
                api.remove_network(net["Id"])
                return True
            except docker.errors.APIError:
                return False  # still in use by something we do not manage; leave it
    return False


def converge(api, group: GroupDeploy) -> dict:
    """Make Docker match the payload. Removals first (they may free names and ports), then the waves of
    dependencyOrder, each with up to maxConcurrentDeployments in parallel; a failed wave stops later ones."""
    with group_lock(group.groupId):
        steps = plan(api, group)
        by_name = {s.name: s for s in steps}
        results = [_execute(api, s) for s in steps if s.action == "remove"]
        if group.options.sharedNetworking:
            _ensure_network(api, group.groupId)
        failed_wave = False
        with ThreadPoolExecutor(max_workers=group.options.maxConcurrentDeployments) as pool:
            for wave in group.waves():
                wave_steps = [by_name[s.instanceNameOnToolbox] for s in wave]
                if failed_wave:
                    results += [{"name": s.name, "outcome": "failed", "status": 424, "error": "dependency failed",
                                 "message": "not deployed: a server earlier in dependencyOrder failed"} for s in wave_steps]
                    continue
                wave_results = list(pool.map(lambda s: _execute(api, s), wave_steps))
                results += wave_results
                failed_wave = any(r["outcome"] == "failed" for r in wave_results)
        if not group.options.sharedNetworking:
            _remove_network(api, group.groupId)
    order = {s.instanceNameOnToolbox: i for i, s in enumerate(group.servers)}
    results.sort(key=lambda r: order.get(r["name"], len(order)))
    return {"groupId": group.groupId, "servers": results,
            "changed": any(r["outcome"] not in ("unchanged",) for r in results),
            "network": network_name(group.groupId) if group.options.sharedNetworking else None}


def remove_group(api, group_id: str, force: bool, graceful_timeout_ms: int) -> dict:
    with group_lock(group_id):
        members = [ds.container_view(c) for c in api.containers(all=True, filters=ds.label_filters(ds.KIND_MCP, group_id))]
        if not members:
            raise ApiError(404, "group not found", f"no containers are labelled with group {group_id!r}")
        timeout_s = graceful_timeout_ms / 1000

        def one(member):
            started = time.monotonic()
            containers.stop_and_remove(api, member["container_id"], force, timeout_s)
            return {"name": member["name"], "outcome": "removed", "container_id": member["container_id"],
                    "duration_ms": round((time.monotonic() - started) * 1000, 1)}

        with ThreadPoolExecutor(max_workers=min(8, len(members))) as pool:
            results = list(pool.map(one, members))
        network_removed = _remove_network(api, group_id)
    return {"groupId": group_id, "servers": results, "forceRemove": force,
            "gracefulTimeoutMs": graceful_timeout_ms, "network_removed": network_removed}


def probe_url(api, member: dict) -> str | None:
    """Where the agent reaches the server: the container's own address, else a port published on loopback."""
    port = member.get("mcp_port")
    if not port:
        return None
    try:
        networks = api.inspect_container(member["container_id"])["NetworkSettings"]["Networks"] or {}
    except docker.errors.NotFound:
        return None
    for net in networks.values():
        if net.get("IPAddress"):
            return f"http://{net['IPAddress']}:{port}{member.get('mcp_endpoint_path') or '/mcp'}"
    for p in member["ports"]:
        if str(p["container_port"]) == str(port) and p["host_port"]:
            return f"http://127.0.0.1:{p['host_port']}{member.get('mcp_endpoint_path') or '/mcp'}"
    return None


def server_health(api, member: dict, do_probe: bool, retry_for: float = 0.0) -> dict:
    running = member["state"] == "running"
    health = {"container": member["state"], "status": "healthy" if running else "unhealthy"}
    if not running:
        health["reason"] = f"container is {member['state']}"
    elif do_probe:
        transport = member.get("mcp_transport") or ""
        url = probe_url(api, member) if transport in HTTP_TRANSPORTS else None
        if transport not in HTTP_TRANSPORTS:  # e.g. stdio: the probe says why it does not speak to it over the network
            health["probe"] = probe(url, transport)
        elif url:
            health["probe"] = probe(url, transport, retry_for=retry_for)
        else:
            health["probe"] = {"ok": None, "reason": "no MCP port is known for this server (no portBindings)"}
        if health["probe"]["ok"] is False:
            health.update(status="unhealthy", reason=f"MCP probe failed: {health['probe'].get('error')}")
    return health


def mcp_servers(api, group_id: str | None = None, do_probe: bool = False, retry_for: float = 0.0) -> list[dict]:
    members = [ds.container_view(c) for c in api.containers(all=True, filters=ds.label_filters(ds.KIND_MCP, group_id))]
    members = [m for m in members if "-dtma-old-" not in m["name"]]  # a container parked during a recreate

    def one(m):
        view = {"group_id": m["group_id"], "server": m["name"], **m}
        view["health"] = server_health(api, m, do_probe, retry_for)
        return view

    if not members:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(members))) as pool:
        return list(pool.map(one, members))


def collective_status(servers: list[dict]) -> str:
    healthy = sum(1 for s in servers if s["health"]["status"] == "healthy")
    if servers and healthy == len(servers):
        return "healthy"
    return "failed" if healthy == 0 else "degraded"


class RestartLimiter:
    """At most `limit` restarts per `window` seconds per server and `cooldown` seconds between two.
    Kept in memory on purpose: it protects the host from restart storms, it is not container state."""

    def __init__(self, limit: int = 3, window: float = 300.0, cooldown: float = 30.0):
        self.limit, self.window, self.cooldown = limit, window, cooldown
        self._history: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def acquire(self, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            history = self._history[name]
            while history and now - history[0] > self.window:
                history.popleft()
            if history and now - history[-1] < self.cooldown:
                wait = self.cooldown - (now - history[-1])
                raise ApiError(429, "restart cooldown", f"{name} was restarted {now - history[-1]:.0f}s ago; wait {wait:.0f}s "
                               f"(at most one restart every {self.cooldown:.0f}s)", headers={"Retry-After": str(int(wait) + 1)})
            if len(history) >= self.limit:
                wait = self.window - (now - history[0])
                raise ApiError(429, "restart limit", f"{name} was restarted {len(history)} times in the last "
                               f"{self.window / 60:.0f} minutes (limit {self.limit}); retry in {wait:.0f}s",
                               headers={"Retry-After": str(int(wait) + 1)})
            history.append(now)
