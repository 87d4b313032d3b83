"""A real Prometheus scrapes the agent installed in a droplet, with the scrape config the role wrote (the bearer token
from a 0600 file), and its HTTP API is queried for the series after a group deploy and a blocked command."""

from __future__ import annotations

import time

import pytest

from metrics_env import SCRAPE_INTERVAL_S, prefix
from dtma_testing import BUSYBOX

pytestmark = pytest.mark.timeout(900)  # the session fixture installs the droplet first


def wait_for(prometheus, promql: str, predicate, timeout: float = 30) -> list[dict]:
    """The query's result once `predicate(result)` holds (Prometheus sees a change only at its next scrape)."""
    deadline = time.monotonic() + timeout
    while True:
        result = prometheus.query(promql)
        if predicate(result) or time.monotonic() > deadline:
            return result
        time.sleep(SCRAPE_INTERVAL_S / 2)


def only_value(result: list[dict]) -> float | None:
    return result[0]["value"] if len(result) == 1 else None


def test_the_role_s_scrape_config_reaches_the_agent_and_a_wrong_token_does_not(prometheus, metrics_droplet):
    up = wait_for(prometheus, 'up{job="dtma"}', lambda r: only_value(r) == 1)
    assert only_value(up) == 1, (up, prometheus.targets())
    assert up[0]["metric"]["dtma_host"] == "droplet-1"
    assert up[0]["metric"]["instance"] == f"127.0.0.1:{metrics_droplet.port}"
    refused = wait_for(prometheus, 'up{job="dtma-wrong-token"}', lambda r: len(r) == 1)
    assert only_value(refused) == 0, refused
    target = next(t for t in prometheus.targets() if t["labels"]["job"] == "dtma-wrong-token")
    assert "401" in target["lastError"], target

    code, health = metrics_droplet.health()
    assert code == 200
    build = prometheus.query('dtma_build_info{job="dtma"}')
    assert [b["metric"]["boot_id"] for b in build] == [health["boot_id"]], build
    assert build[0]["metric"]["version"] == health["version"]
    assert only_value(prometheus.query('dtma_docker_up{job="dtma"}')) == 1


def test_series_after_a_group_deploy_and_a_blocked_command(prometheus, metrics_droplet):
    d = metrics_droplet
    group = f"{prefix(d)}-grp"
    servers = [f"{group}-a", f"{group}-b"]
    body = {"groupId": group, "servers": [
        {"instanceNameOnToolbox": n, "dockerImageUrl": BUSYBOX, "accountToolInstanceId": n, "mcpTransportType": "stdio",
         "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}} for n in servers]}
    try:
        code, text = d.request("POST", "/mcp/groups", json=body, timeout=120)
        assert code == 201, text
        code, blocked = d.execute("rm -rf /")
        assert code == 403, blocked
        rule = blocked["rule"]
        code, health = d.request("GET", f"/mcp/health/{d.group}", params={"retryFor": 5})
        assert code == 200, health  # probes the demo group's MCP server

        running = wait_for(prometheus, f'dtma_containers{{job="dtma",group="{group}",state="running"}}',
                           lambda r: only_value(r) == 2)
        assert only_value(running) == 2 and running[0]["metric"]["kind"] == "mcp", running
        verdicts = wait_for(prometheus, f'dtma_exec_verdicts_total{{job="dtma",outcome="blocked",rule="{rule}"}}',
                            lambda r: only_value(r) == 1)
        assert only_value(verdicts) == 1, (verdicts, prometheus.query("dtma_exec_verdicts_total"))
        deploys = prometheus.query('dtma_http_request_duration_seconds_count{job="dtma",route="/mcp/groups",'
                                   'method="POST",status="201"}')
        assert only_value(deploys) >= 1, deploys
        execs = prometheus.query('dtma_http_request_duration_seconds_count{job="dtma",route="/ssh/execute",'
                                 'status="403"}')
        assert only_value(execs) == 1, execs
        restarts = prometheus.query(f'dtma_container_restarts_total{{job="dtma",group="{group}"}}')
        assert sorted(r["metric"]["name"] for r in restarts) == servers and all(r["value"] == 0 for r in restarts)
        probe = wait_for(prometheus, f'dtma_mcp_probe_success{{job="dtma",server="{d.mcp}"}}',
                         lambda r: only_value(r) == 1)
        assert only_value(probe) == 1 and probe[0]["metric"]["group"] == d.group, probe
        latency = prometheus.query(f'dtma_mcp_probe_latency_seconds{{job="dtma",server="{d.mcp}"}}')
        assert 0 < only_value(latency) < 10, latency
        # a 95th percentile of request latency, by route: what a dashboard asks for
        p95 = prometheus.query('histogram_quantile(0.95, sum by (le, route) '
                               '(rate(dtma_http_request_duration_seconds_bucket{job="dtma"}[1m])))')
        assert any(r["metric"].get("route") == "/metrics" for r in p95), p95
        # no raw path reaches a label: every route value is a template or "none"
        routes = {r["metric"]["route"] for r in prometheus.query('dtma_http_request_duration_seconds_count{job="dtma"}')}
        assert d.group not in " ".join(routes) and "/mcp/health/{groupId}" in routes, routes
    finally:
        d.request("DELETE", f"/mcp/groups/{group}", params={"forceRemove": "true"}, timeout=60)
    gone = wait_for(prometheus, f'dtma_containers{{job="dtma",group="{group}"}}', lambda r: not r)
    assert not gone, gone
