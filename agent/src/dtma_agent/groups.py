"""MCP groups: plan and converge a group's containers to a payload, remove a group, and judge its health.

A group is the set of containers labelled with its id; nothing else is remembered between requests.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor


from . import containers, reconcile
from . import docker_state as ds
from .create_config import Scope
from .docker_service import DockerService
from .errors import ApiError
from .mcp_probe import HTTP_TRANSPORTS, probe
from .schemas import GroupDeploy, McpServerSpec
from .sdk import docker


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


def desired(svc: DockerService, group: GroupDeploy, server: McpServerSpec, image_ids: dict) -> reconcile.Desired:
    """The server exactly as deploying it would create it; a 422 for an image that pullPolicy never cannot get."""
    name = server.instanceNameOnToolbox
    if server.dockerImageUrl not in image_ids:
        image_ids[server.dockerImageUrl] = svc.image_id(server.dockerImageUrl, f"servers[{name}].dockerImageUrl")
    want = reconcile.Desired(name, ds.KIND_MCP, desired_config(group, server), server.dockerImageUrl,
                             image_ids[server.dockerImageUrl], group=group.groupId, transport=server.mcpTransportType,
                             endpoint=server.mcpEndpointPath, mcp_port=server.mcp_port,
                             pull_policy=server.pullPolicy, auth=server.registryAuth,
                             field=f"servers[{name}].dockerImageUrl", name_field=f"servers[{name}].instanceNameOnToolbox",
                             ports_field=f"servers[{name}].portBindings", auth_field=f"servers[{name}].registryAuth",
                             policy_field=f"servers[{name}].pullPolicy")
    reconcile.require_local(want)
    return want


def plan(svc: DockerService, group: GroupDeploy) -> list[reconcile.Step]:
    """What converging would do, per server (reconcile.decide); reads Docker, changes nothing. For a server with
    pullPolicy always it is the plan for the image as it is on the host now: converging pulls first and then makes
    this same plan with the pulled image (each step's `pull` says so)."""
    everything = svc.everything()
    image_ids: dict = {}
    steps = [svc.plan(desired(svc, group, s, image_ids), everything, _settle(svc, group)) for s in group.servers]
    wanted = {s.instanceNameOnToolbox for s in group.servers}
    for view in everything.values():
        if view["kind"] != ds.KIND_MCP or view["group_id"] != group.groupId:
            continue
        owner = reconcile.parked_owner(view["name"])
        if owner is None and view["name"] not in wanted:
            steps.append(reconcile.Step(view["name"], "remove", "not in the payload", current=reconcile.Observed(view)))
        elif owner is not None and owner not in wanted:
            steps.append(reconcile.Step(view["name"], "remove", f"kept aside by an interrupted recreate of {owner}, "
                                        "which is not in the payload", current=reconcile.Observed(view)))
    return steps


def _settle(svc: DockerService, group: GroupDeploy) -> float:
    return svc.readiness.settle_s if group.options.settleSeconds is None else group.options.settleSeconds


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


def converge(svc: DockerService, group: GroupDeploy) -> dict:
    """Make Docker match the payload. Images with pullPolicy always are pulled first (a refused pull is a 422 and
    nothing changes), then the plan is made with them. Removals first (they may free names and ports), then the waves
    of dependencyOrder, each with up to maxConcurrentDeployments in parallel; a failed wave stops later ones.
    A server counts only once it is ready (reconcile.wait_ready)."""
    readiness = svc.readiness_for(group.options.settleSeconds, group.options.readyTimeoutSeconds)
    with svc.lock(f"group:{group.groupId}"):
        if any(s.pullPolicy == "always" for s in group.servers):
            image_ids: dict = {}
            reconcile.pull_first(svc.api, [desired(svc, group, s, image_ids) for s in group.servers])
        steps = plan(svc, group)
        by_name = {s.name: s for s in steps}
        results = [svc.apply(s, readiness) for s in steps if s.action == "remove"]
        if group.options.sharedNetworking:
            _ensure_network(svc.api, group.groupId)
        failed_wave = False
        with ThreadPoolExecutor(max_workers=group.options.maxConcurrentDeployments) as pool:
            for wave in group.waves():
                wave_steps = [by_name[s.instanceNameOnToolbox] for s in wave]
                if failed_wave:
                    results += [{"name": s.name, "outcome": "failed", "status": 424, "error": "dependency failed",
                                 "message": "not deployed: a server earlier in dependencyOrder failed"} for s in wave_steps]
                    continue
                wave_results = list(pool.map(lambda s: svc.apply(s, readiness), wave_steps))
                results += wave_results
                failed_wave = any(r["outcome"] == "failed" for r in wave_results)
        if not group.options.sharedNetworking:
            _remove_network(svc.api, group.groupId)
    order = {s.instanceNameOnToolbox: i for i, s in enumerate(group.servers)}
    results.sort(key=lambda r: order.get(r["name"], len(order)))
    return {"groupId": group.groupId, "servers": results,
            "changed": any(r["outcome"] != "unchanged" for r in results),
            "network": network_name(group.groupId) if group.options.sharedNetworking else None,
            "settleSeconds": readiness.settle_s}


def remove_group(svc: DockerService, group_id: str, force: bool, graceful_timeout_ms: int) -> dict:
    with svc.lock(f"group:{group_id}"):
        # kept-aside containers too: removing the group leaves nothing of it
        members = [ds.container_view(c) for c in svc.api.containers(all=True, filters=ds.label_filters(ds.KIND_MCP, group_id))]
        if not members:
            raise ApiError(404, "group not found", f"no containers are labelled with group {group_id!r}")
        timeout_s = graceful_timeout_ms / 1000

        def one(member):
            started = time.monotonic()
            svc.remove(member, force, timeout_s)
            return {"name": member["name"], "outcome": "removed", "container_id": member["container_id"],
                    "duration_ms": round((time.monotonic() - started) * 1000, 1)}

        with ThreadPoolExecutor(max_workers=min(8, len(members))) as pool:
            results = list(pool.map(one, members))
        network_removed = _remove_network(svc.api, group_id)
    return {"groupId": group_id, "servers": results, "forceRemove": force,
            "gracefulTimeoutMs": graceful_timeout_ms, "network_removed": network_removed}


def server_health(svc: DockerService, member: dict, do_probe: bool, retry_for: float = 0.0) -> dict:
    running = member["state"] == "running"
    health = {"container": member["state"], "status": "healthy" if running else "unhealthy"}
    # a probe inspects each container anyway: its restart count (since Docker last started it by request) and
    # start time tell a crash loop from a server that is merely up
    details = svc.inspect(member) if do_probe else None
    if details:
        health.update(restart_count=details.get("RestartCount", 0), started_at=details["State"].get("StartedAt"))
    if not running:
        health["reason"] = f"container is {member['state']}"
    elif do_probe:
        transport = member.get("mcp_transport") or ""
        if transport not in HTTP_TRANSPORTS:  # e.g. stdio: the probe says why it does not speak to it over the network
            health["probe"] = probe(None, transport)
        else:
            url = details and reconcile.probe_url(details, member.get("mcp_port"), member.get("mcp_endpoint_path"))
            health["probe"] = (probe(url, transport, retry_for=retry_for, server=member["name"]) if url else
                               {"ok": None, "reason": "no MCP port is known for this server (no portBindings)"})
        if health["probe"]["ok"] is False:
            health.update(status="unhealthy", reason=f"MCP probe failed: {health['probe'].get('error')}")
    return health


def mcp_servers(svc: DockerService, group_id: str | None = None, do_probe: bool = False, retry_for: float = 0.0) -> list[dict]:
    members = svc.managed(ds.KIND_MCP, group_id)

    def one(m):
        view = {"group_id": m["group_id"], "server": m["name"], **m}
        view["health"] = server_health(svc, m, do_probe, retry_for)
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
