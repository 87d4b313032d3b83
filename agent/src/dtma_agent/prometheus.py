"""The agent's Prometheus metrics (GET /metrics): what happens is counted where it happens (requests here, exec
verdicts in audit.record, MCP probes in mcp_probe.probe); what Docker holds is read at scrape time (routes/metrics.py),
so a scrape never shows containers that Docker no longer has.

Every label value is bounded: route templates (never raw paths), status codes, policy rule names, a fixed set of
outcomes, and the names of the containers that exist at scrape time.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import Counter, Histogram

# from the sub-millisecond /health to group deploys that wait for images and readiness
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNROUTED = "none"  # requests that reached no route: 401 before routing, 404, 413

# Created unregistered: each app registers them in a registry of its own (routes/metrics.py), with its Docker state.
REQUESTS = Histogram("dtma_http_request_duration_seconds", "HTTP requests by route template, method and status "
                     "(the _count series is the request count)", ["route", "method", "status"],
                     buckets=REQUEST_BUCKETS, registry=None)
EXEC_VERDICTS = Counter("dtma_exec_verdicts", "POST /ssh/execute outcomes by policy rule", ["rule", "outcome"],
                        registry=None)
PROBES = Histogram("dtma_mcp_probe_duration_seconds", "MCP probes (initialize + tools/list) by result",
                   ["result"], registry=None)

# exec outcomes: the audit verdict, refined by what happened to an executed command or why it was not run
_REJECTED = {429: "busy", 503: "sandbox_unavailable"}
_VERDICT_OUTCOMES = {"blocked": "blocked", "docker_denied": "docker_filter_denied",
                     "dry_run:allowed": "dry_run_allowed", "dry_run:blocked": "dry_run_blocked"}


def exec_outcome(verdict: str, timed_out: bool | None, truncated: bool | None, status: int | None) -> str:
    """One outcome per audited verdict; an executed command that timed out counts as timed_out (not also as
    truncated), one whose output was capped as truncated."""
    if verdict == "executed":
        return "timed_out" if timed_out else "truncated" if truncated else "executed"
    if verdict == "rejected":
        return _REJECTED.get(status, "sandbox_failed")  # 500: the launcher refused to set the sandbox up
    return _VERDICT_OUTCOMES.get(verdict, "other")


def count_exec(verdict: str, rule: str | None, timed_out=None, truncated=None, status=None) -> None:
    EXEC_VERDICTS.labels(rule or "none", exec_outcome(verdict, timed_out, truncated, status)).inc()


# The last probe of each MCP server (by container name); shown for the servers that exist at scrape time only.
LAST_PROBE: dict[str, tuple[bool, float, float]] = {}
PROBE_LOCK = threading.Lock()


def observe_probe(server: str, ok: bool, seconds: float) -> None:
    PROBES.labels("ok" if ok else "failed").observe(seconds)
    with PROBE_LOCK:
        LAST_PROBE[server] = (ok, seconds, time.time())


class RequestMetrics:
    """Pure ASGI middleware timing every HTTP request by route template and status: a dict look-up and one
    histogram observation per request (a few microseconds), no per-request objects beyond the send wrapper."""

    def __init__(self, app):
        self.app = app
        self._children: dict[tuple, object] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before starting a response

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")  # set by the router on the scope it shares with us
            method = scope["method"]
            key = (getattr(route, "path", UNROUTED), method if method in METHODS else "other", status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = REQUESTS.labels(key[0], key[1], str(status))
            child.observe(time.perf_counter() - started)
