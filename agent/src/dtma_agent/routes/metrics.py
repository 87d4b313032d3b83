"""GET /metrics: the Prometheus exposition (authenticated like every route but /health). The counters live in
prometheus.py; what Docker holds is read here, at scrape time, with one container list (and one inspect per managed
container for its restart count)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import choose_encoder

from .. import __version__, prometheus
from .. import docker_state as ds
from ..docker_service import docker_failures

router = APIRouter(tags=["metrics"])


class AgentCollector:
    """Build info, Docker reachability, managed containers by group and state, Docker's restart count of each, and
    the last MCP probe of each server that exists now. Docker down is dtma_docker_up 0, never a failed scrape."""

    def __init__(self, state):
        self.state = state

    def collect(self):
        build = InfoMetricFamily("dtma_build", "The agent's version and this process's boot id (as /health says)")
        build.add_metric([], {"version": __version__, "boot_id": self.state.boot_id})
        yield build
        up = GaugeMetricFamily("dtma_docker_up", "Whether the Docker engine answered this scrape's container list")
        try:
            views = self.state.docker.managed()
            restart_counts = self.state.docker.restart_counts(views)
        except docker_failures():
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _containers(views, restart_counts)
        yield from _probes(views)


def _containers(views: list[dict], restart_counts: dict[str, int]):
    containers = GaugeMetricFamily("dtma_containers", "Managed containers by kind, group and state",
                                   labels=["kind", "group", "state"])
    restarts = CounterMetricFamily("dtma_container_restarts", "Docker's restart count of each managed container "
                                   "(starts again from 0 when the container is recreated)",
                                   labels=["kind", "group", "name"])
    by_state: dict[tuple, int] = {}
    for v in views:
        key = (v["kind"] or "", v["group_id"] or "", v["state"] or "")
        by_state[key] = by_state.get(key, 0) + 1
        if v["container_id"] in restart_counts:
            restarts.add_metric([key[0], key[1], v["name"]], restart_counts[v["container_id"]])
    for key, count in sorted(by_state.items()):
        containers.add_metric(list(key), count)
    return containers, restarts


def _probes(views: list[dict]):
    success = GaugeMetricFamily("dtma_mcp_probe_success", "Whether the last MCP probe of the server succeeded",
                                labels=["group", "server"])
    latency = GaugeMetricFamily("dtma_mcp_probe_latency_seconds", "How long the last MCP probe of the server took",
                                labels=["group", "server"])
    when = GaugeMetricFamily("dtma_mcp_probe_timestamp_seconds", "When the server was last probed (Unix time)",
                             labels=["group", "server"])
    with prometheus.PROBE_LOCK:
        for gone in prometheus.LAST_PROBE.keys() - {v["name"] for v in views}:  # removed servers are forgotten
            del prometheus.LAST_PROBE[gone]
        last = dict(prometheus.LAST_PROBE)
    for v in views:
        if v["kind"] == ds.KIND_MCP and v["name"] in last:
            ok, seconds, at = last[v["name"]]
            labels = [v["group_id"] or "", v["name"]]
            success.add_metric(labels, 1 if ok else 0)
            latency.add_metric(labels, seconds)
            when.add_metric(labels, at)
    return success, latency, when


def create_registry(state) -> CollectorRegistry:
    """An app's registry: the process's request, exec and probe metrics, the process and the Python runtime, and the
    app's Docker state read at scrape time."""
    disable_created_metrics()  # no _created series next to every counter and histogram: Prometheus ignores them
    registry = CollectorRegistry()
    for collector in (prometheus.REQUESTS, prometheus.EXEC_VERDICTS, prometheus.PROBES, AgentCollector(state)):
        registry.register(collector)
    for runtime in (ProcessCollector, PlatformCollector, GCCollector):
        runtime(registry=registry)
    return registry


@router.get("/metrics", summary="Prometheus metrics: requests, exec verdicts, containers, MCP probes, Docker, build",
            response_class=Response,
            responses={200: {"content": {"text/plain": {}, "application/openmetrics-text": {}}}})
def metrics(request: Request):
    encoder, content_type = choose_encoder(request.headers.get("accept"))
    return Response(encoder(request.app.state.metrics_registry), media_type=content_type)
