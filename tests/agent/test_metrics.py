"""GET /metrics: the Prometheus exposition of a real agent, read with prometheus_client's own parser. Requests by route
template and status, exec verdicts by rule and outcome, containers by group and state, restart counts, MCP probes,
Docker reachability and build info; authenticated like every route but /health."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from dtma_agent.policy import DEFAULT_POLICY
from dtma_agent.prometheus import RequestMetrics
from dtma_testing import BUSYBOX, MCP_IMAGE, wait_until


def scrape(agent) -> dict:
    """{(sample name, sorted label pairs): value} of one scrape."""
    r = agent.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: dict, metric: str, **labels) -> float | None:
    """The value of the one sample `name` whose labels include `labels` (None when there is none)."""
    found = [v for (n, pairs), v in samples.items() if n == metric and labels.items() <= dict(pairs).items()]
    assert len(found) <= 1, f"{len(found)} samples of {metric} match {labels}"
    return found[0] if found else None


def verdicts(agent, outcome: str, rule: str | None = None) -> float:
    """How many exec requests ended in `outcome` (of `rule`), summed over rules when none is given."""
    return sum(v for (n, pairs), v in scrape(agent).items() if n == "dtma_exec_verdicts_total"
               and dict(pairs)["outcome"] == outcome and (rule is None or dict(pairs)["rule"] == rule))


# ---------------------------------------------------------------- authentication and format

def test_metrics_need_the_token_and_health_does_not(agent):
    assert requests.get(agent.url + "/metrics", timeout=10).status_code == 401
    wrong = requests.get(agent.url + "/metrics", headers={"Authorization": "Bearer " + "x" * 48}, timeout=10)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid bearer token"
    assert requests.get(agent.url + "/health", timeout=10).status_code == 200
    samples = scrape(agent)
    health = requests.get(agent.url + "/health", timeout=10).json()
    assert value(samples, "dtma_build_info", version=health["version"], boot_id=health["boot_id"]) == 1
    assert value(samples, "dtma_docker_up") == 1
    assert value(samples, "process_resident_memory_bytes") > 0


def test_openmetrics_is_negotiated(agent):
    r = agent.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n") and "dtma_build_info{" in r.text


def test_requests_are_labelled_by_route_template_never_by_raw_path(make_agent):
    a = make_agent()
    count = "dtma_http_request_duration_seconds_count"
    health_before = value(scrape(a), count, route="/health", status="200")  # the fixture's wait for the agent
    unknown = f"dtmatest-{uuid.uuid4().hex[:8]}"
    assert a.get(f"/mcp/health/{unknown}").status_code == 404
    assert a.get(f"/no/such/{unknown}").status_code == 404
    assert requests.get(a.url + f"/tools/{unknown}", timeout=10).status_code == 401
    requests.get(a.url + "/health", timeout=10)
    text = a.get("/metrics").text
    assert unknown not in text  # no raw path (nor anything else from a URL) becomes a label value
    samples = scrape(a)
    assert value(samples, count, route="/mcp/health/{groupId}", method="GET", status="404") == 1
    assert value(samples, count, route="none", method="GET", status="404") == 1
    assert value(samples, count, route="none", method="GET", status="401") == 1  # refused before routing
    assert value(samples, count, route="/health", method="GET", status="200") == health_before + 1
    assert value(samples, count, route="/metrics", method="GET", status="200") == 2  # the scrapes before this one
    assert value(samples, "dtma_http_request_duration_seconds_bucket", route="/health", status="200",
                 le="+Inf") == health_before + 1
    assert 0 < value(samples, "dtma_http_request_duration_seconds_sum", route="/health", status="200") < 5


def test_an_unknown_method_is_not_a_label_value(agent):
    r = agent.session.request("PROPFIND", agent.url + "/health", timeout=10)  # a method HTTP knows, no route has
    assert r.status_code == 405
    samples = scrape(agent)
    assert value(samples, "dtma_http_request_duration_seconds_count", route="/health", method="other",
                 status="405") >= 1
    assert "PROPFIND" not in agent.get("/metrics").text


# ---------------------------------------------------------------- exec verdicts

def execute(agent, **body):
    return agent.post("/ssh/execute", json=body)


def test_exec_outcomes_are_counted_by_rule(make_agent):
    a = make_agent(env={"DTMA_EXEC_OUTPUT_CAP": "4096"})
    blocked = execute(a, command="rm -rf /")
    assert blocked.status_code == 403
    rule = blocked.json()["rule"]
    ran = execute(a, command="echo hi").json()
    assert ran["exit_code"] == 0
    timed_out = execute(a, command="sleep 5", timeout=500).json()
    assert timed_out["timed_out"] is True
    capped = execute(a, command="seq 1 10000").json()
    assert capped["truncated"] is True and capped["timed_out"] is False
    assert execute(a, command="rm -rf /", dry_run=True).json()["allowed"] is False

    samples = scrape(a)
    assert value(samples, "dtma_exec_verdicts_total", rule=rule, outcome="blocked") == 1
    assert value(samples, "dtma_exec_verdicts_total", rule=rule, outcome="dry_run_blocked") == 1
    assert value(samples, "dtma_exec_verdicts_total", outcome="executed") == 1
    assert value(samples, "dtma_exec_verdicts_total", outcome="timed_out") == 1
    assert value(samples, "dtma_exec_verdicts_total", outcome="truncated") == 1
    executed = [dict(pairs)["rule"] for (n, pairs), v in samples.items()
                if n == "dtma_exec_verdicts_total" and dict(pairs)["outcome"] == "executed"]
    assert executed and all(r.startswith("allow.") for r in executed), executed  # the rule that allowed it
    # every exec request is one count, so the counter agrees with the route's own request count
    total = sum(v for (n, pairs), v in samples.items() if n == "dtma_exec_verdicts_total")
    requests_seen = sum(v for (n, pairs), v in samples.items() if n == "dtma_http_request_duration_seconds_count"
                        and dict(pairs)["route"] == "/ssh/execute")
    assert total == requests_seen == 5


def test_a_missing_sandbox_counts_as_sandbox_unavailable(make_agent, tmp_path):
    a = make_agent(env={"DTMA_SANDBOX_SOCKET": str(tmp_path / "absent.sock")})
    assert execute(a, argv=["true"]).status_code == 503
    assert verdicts(a, "sandbox_unavailable") == 1 and verdicts(a, "executed") == 0


def test_docker_filter_denials_are_counted(make_agent, tmp_path, name):
    # a policy that lets any docker command through: the Docker API filter alone refuses `docker run`
    policy = copy.deepcopy(DEFAULT_POLICY)
    policy["executables"]["docker"] = {"category": "docker_any", "unknown_args": True}
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    a = make_agent(env={"DTMA_POLICY_FILE": str(tmp_path / "policy.json")})
    body = execute(a, argv=["docker", "run", "--name", name("filtered"), BUSYBOX, "true"]).json()
    assert body["exit_code"] != 0 and "not allowed" in body["stderr"], body
    assert verdicts(a, "docker_filter_denied", rule="docker_filter") >= 1
    assert verdicts(a, "executed") == 1  # the command itself ran (and failed): one count of its own


# ---------------------------------------------------------------- Docker state at scrape time

def test_a_group_deploy_shows_containers_restarts_and_probes(agent, docker_api, name, groups):
    group = name("grp")
    groups.append(group)
    server, sleeper = name("mcp"), name("sleeper")
    body = {"groupId": group, "servers": [
        {"instanceNameOnToolbox": server, "dockerImageUrl": MCP_IMAGE, "accountToolInstanceId": f"ati-{server}",
         "mcpTransportType": "streamable-http", "mcpEndpointPath": "/mcp", "portBindings": {"8080": ""},
         "environmentVariables": {"MCP_TRANSPORT": "streamable-http", "MCP_PATH": "/mcp"}},
        {"instanceNameOnToolbox": sleeper, "dockerImageUrl": BUSYBOX, "accountToolInstanceId": f"ati-{sleeper}",
         "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}}], "options": {"sharedNetworking": True}}
    r = agent.post("/mcp/groups", json=body)
    assert r.status_code == 201, r.text
    samples = scrape(agent)
    assert value(samples, "dtma_containers", kind="mcp", group=group, state="running") == 2
    assert value(samples, "dtma_container_restarts_total", group=group, name=sleeper) == 0

    health = agent.get(f"/mcp/health/{group}", params={"retryFor": 5})
    assert health.status_code == 200, health.text
    probed = {s["server"]: s["health"] for s in health.json()["data"]["servers"]}
    assert probed[server]["probe"]["ok"] is True, probed
    samples = scrape(agent)
    assert value(samples, "dtma_mcp_probe_success", group=group, server=server) == 1
    assert 0 < value(samples, "dtma_mcp_probe_latency_seconds", group=group, server=server) < 10
    assert time.time() - value(samples, "dtma_mcp_probe_timestamp_seconds", group=group, server=server) < 60
    assert value(samples, "dtma_mcp_probe_success", group=group, server=sleeper) is None  # never spoken to
    assert value(samples, "dtma_mcp_probe_duration_seconds_count", result="ok") >= 1

    # the sleeper's process dies: Docker's restart policy brings it back, and the count shows it
    cid = docker_api.containers(filters={"name": f"^/{sleeper}$"})[0]["Id"]
    kill = 'kill $(grep -l "^sleep" /proc/[0-9]*/comm | cut -d/ -f3)'
    docker_api.exec_start(docker_api.exec_create(cid, ["sh", "-c", kill]))
    assert wait_until(lambda: docker_api.inspect_container(cid)["RestartCount"] >= 1, 30)
    assert wait_until(lambda: value(scrape(agent), "dtma_container_restarts_total", group=group, name=sleeper) >= 1,
                      10)

    assert agent.delete(f"/mcp/groups/{group}", params={"forceRemove": "true"}).status_code == 200
    samples = scrape(agent)
    assert value(samples, "dtma_containers", group=group) is None  # gone from Docker, gone from the scrape
    assert value(samples, "dtma_mcp_probe_success", group=group, server=server) is None


def test_a_failed_probe_is_success_0_with_its_duration(make_agent, name):
    a = make_agent()
    group, server = name("grp"), name("wrong")
    body = {"groupId": group, "options": {"sharedNetworking": True}, "servers": [
        {"instanceNameOnToolbox": server, "dockerImageUrl": MCP_IMAGE, "accountToolInstanceId": f"ati-{server}",
         "mcpTransportType": "streamable-http", "mcpEndpointPath": "/nope", "portBindings": {"8080": ""},
         "environmentVariables": {"MCP_TRANSPORT": "streamable-http", "MCP_PATH": "/mcp"}}]}
    try:
        assert a.post("/mcp/groups", json=body).status_code == 201
        health = a.get(f"/mcp/health/{group}", params={"retryFor": 5}).json()
        assert health["data"]["servers"][0]["health"]["probe"]["ok"] is False, health
        samples = scrape(a)
        assert value(samples, "dtma_mcp_probe_success", group=group, server=server) == 0
        assert 0 < value(samples, "dtma_mcp_probe_latency_seconds", group=group, server=server) < 10
        assert value(samples, "dtma_mcp_probe_duration_seconds_count", result="failed") == 1
        assert value(samples, "dtma_mcp_probe_duration_seconds_count", result="ok") is None
    finally:
        a.delete(f"/mcp/groups/{group}", params={"forceRemove": "true"})


def test_docker_down_is_docker_up_0_not_a_failed_scrape(make_agent, tmp_path):
    a = make_agent(env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}, wait=False)
    assert wait_until(a.answers, 15)
    samples = scrape(a)
    assert value(samples, "dtma_docker_up") == 0
    assert value(samples, "dtma_build_info") == 1
    assert not [key for key in samples if key[0] == "dtma_containers"]


@pytest.mark.parametrize("accept", ["text/html", "*/*", ""])
def test_other_accept_headers_get_the_text_format(agent, accept):
    r = agent.get("/metrics", headers={"Accept": accept})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")


class ROUTE:  # what the router leaves on the scope: the matched route, with its template
    path = "/health"


def test_the_request_middleware_adds_microseconds():
    """What RequestMetrics adds to a request, in process, against the same app without it (the route's work is
    nothing here, so this is the middleware's whole cost): about 3 us on a quiet machine, 15-50 us on one with a load
    of 20 on 2 cores; the bound only catches a gross regression (work per request that grows with the routes or the
    series)."""
    async def app(scope, receive, send):
        scope["route"] = ROUTE
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message):
        pass

    async def receive():
        return {"type": "http.request"}

    async def per_request(handler, n=20000) -> float:
        started = time.perf_counter()
        for _request in range(n):
            await handler({"type": "http", "method": "GET", "path": "/health"}, receive, send)
        return (time.perf_counter() - started) / n

    async def measure() -> float:
        wrapped = RequestMetrics(app)
        added = []
        for _round in range(5):
            added.append(await per_request(wrapped) - await per_request(app))
        return sorted(added)[2]

    added = asyncio.run(measure())
    print(f"RequestMetrics adds {added * 1e6:.1f} us per request")
    assert added < 100e-6, f"{added * 1e6:.1f} us per request"
