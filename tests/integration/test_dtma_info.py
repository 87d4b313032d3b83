"""agentopia.dtma.dtma_info in real ansible-playbook runs against a real agent, real Docker, a real sshd
and a real HTTP server standing in for the backend."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from dtma_testing import MCP_IMAGE, free_port, wait_until

MOD = "agentopia.dtma.dtma_info"
ALL = ["health", "status", "docker", "system", "logs", "mcp", "audit"]
NO_BACKEND = {"AGENTOPIA_API_BASE_URL": ""}


# --- a tiny HTTP server standing in for the backend ------------------------------------------------------

@pytest.fixture
def backend():
    class Handler(BaseHTTPRequestHandler):
        seen: list = []

        def do_GET(self):  # noqa: N802 (http.server's name)
            Handler.seen.append(dict(self.headers))
            self.send_response(404)  # any HTTP answer means reachable
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.seen = Handler.seen
    yield server
    server.shutdown()
    server.server_close()


# --- sections ---------------------------------------------------------------------------------------------

def test_every_section_returns_the_agents_data(agent, ansible_run, cleanup, name):
    group, server = name("diag-grp"), name("diag-mcp")
    cleanup.append(server)
    mcp_env = {"MCP_TRANSPORT": "streamable-http", "MCP_PORT": "8080", "MCP_PATH": "/mcp"}
    r = agent.post("/mcp/groups", json={"groupId": group, "servers": [{
        "instanceNameOnToolbox": server, "dockerImageUrl": MCP_IMAGE, "mcpTransportType": "streamable-http",
        "portBindings": {"8080": free_port()}, "environmentVariables": mcp_env}]})
    assert r.status_code == 201, r.text

    r = ansible_run([{MOD: {"gather": ALL, "log_lines": 5}}], agent=agent, env=NO_BACKEND)
    res = r[0]
    assert res["failed"] is False, r
    assert res["changed"] is False
    health = res["health"]
    assert health["overall"] == "healthy"
    assert health["checks"]["agent_api"]["status"] == "healthy" and health["checks"]["agent_api"]["response_time_ms"] > 0
    assert health["checks"]["docker"]["status"] == "healthy"
    assert health["checks"]["ssh"] == {"status": "unknown", "reason": "no ssh_host given", "response_time_ms": None}
    assert health["checks"]["backend"]["status"] == "unknown" and "no backend URL" in health["checks"]["backend"]["reason"]
    truth = agent.get("/health").json()
    assert health["agent"]["boot_id"] == truth["boot_id"] and health["agent"]["version"] == truth["version"]

    status = agent.get("/status").json()
    assert res["status"]["version"] == status["version"]
    assert res["status"]["environment"] == status["environment"]
    assert "success" not in res["status"]

    docker = res["docker"]
    assert docker["docker_info_success"] is True
    assert docker["docker_version"] == agent.get("/diagnostics/docker").json()["diagnostics"]["docker_version"]
    assert server in [c["name"] for c in docker["containers"]]

    system = res["system"]
    assert {"uptime", "disk_usage", "memory_info", "top_processes", "dtma_port_status", "environment"} <= set(system)
    assert system["environment"] == agent.get("/diagnostics/system").json()["diagnostics"]["environment"]

    logs = res["logs"]
    assert {"dtma_service", "mcp_containers", "application_logs"} <= set(logs)
    assert len(logs["application_logs"]) <= 5
    assert server in logs["mcp_containers"]

    mcp = {s["name"]: s for s in res["mcp"]["mcp_servers"]}
    assert mcp[server]["group_id"] == group
    probe = agent.get("/mcp/status", params={"probe": "true"}).json()["mcp_servers"]
    assert {s["name"] for s in probe} == set(mcp)
    assert "probe" in mcp[server]["health"], mcp[server]
    assert mcp[server]["health"]["restart_count"] == 0

    assert set(res["audit"]) >= {"entries", "count", "verdicts", "source"} and "success" not in res["audit"]


def test_audit_section_returns_the_blocked_commands_newest_first(make_agent, ansible_run):
    a = make_agent()
    for command in ("cat /etc/shadow", "frobnicate --now"):
        assert a.post("/ssh/execute", json={"command": command}).status_code == 403
    assert a.post("/ssh/execute", json={"command": "echo fine"}).status_code == 200
    r = ansible_run([{MOD: {"gather": ["audit"]}}, {MOD: {"gather": ["audit"], "audit_limit": 1}},
                     {MOD: {"gather": ["audit"], "audit_verdicts": ["executed"]}},
                     {MOD: {"gather": ["health", "audit"], "audit_limit": 1001}},
                     {MOD: {"gather": ["audit"], "audit_verdicts": ["allowed"]}}], agent=a, env=NO_BACKEND)
    assert [e["command"] for e in r[0]["audit"]["entries"]] == ["frobnicate --now", "cat /etc/shadow"], r[0]
    assert r[0]["audit"]["entries"][0]["rule"] and r[0]["changed"] is False
    assert [e["command"] for e in r[1]["audit"]["entries"]] == ["frobnicate --now"]
    assert [e["command"] for e in r[2]["audit"]["entries"]] == ["echo fine"]
    assert r[3]["failed"] is True and r[3]["msg"] == "audit_limit must be between 1 and 1000, not 1001", r[3]
    assert r[4]["failed"] is True and "audit_verdicts" in r[4]["msg"] and "allowed" in r[4]["msg"], r[4]
    assert a.token not in r.output


def test_default_sections_and_check_mode(agent, ansible_run):
    r = ansible_run([{MOD: {}}], agent=agent, check=True, env=NO_BACKEND)
    res = r[0]
    assert res["failed"] is False and res["changed"] is False, r
    assert set(res) >= {"health", "status"} and not {"docker", "system", "logs", "mcp", "audit"} & set(res)
    assert res["health"]["overall"] == "healthy"
    assert "diff" not in res


def test_a_playbook_with_the_old_module_name_still_runs(agent, ansible_run):
    """dtma_diagnostics was renamed to dtma_info: meta/runtime.yml redirects the old name (with a deprecation
    warning) and keeps it in the action group, so its module_defaults still reach the task."""
    r = ansible_run([{"agentopia.dtma.dtma_diagnostics": {"gather": ["health", "status"]}}, {MOD: {"gather": ["health"]}}],
                    agent=agent, env=NO_BACKEND)
    assert r.rc == 0, r
    old, new = r[0], r[1]
    assert old["failed"] is False and old["changed"] is False, r
    assert old["health"]["overall"] == "healthy" and old["status"]["version"] == agent.get("/status").json()["version"]
    assert old["health"]["agent"]["boot_id"] == new["health"]["agent"]["boot_id"]
    assert "agentopia.dtma.dtma_diagnostics has been deprecated" in " ".join(r.output.split())
    assert "renamed to agentopia.dtma.dtma_info" in " ".join(r.output.split())


def test_health_with_the_agent_down_reports_unhealthy_and_does_not_fail(make_agent, ansible_run):
    down = make_agent()
    down.stop()
    r = ansible_run([{MOD: {"gather": ["health"]}}], verbosity=3, url=down.url, token=down.token, env=NO_BACKEND)
    res = r[0]
    assert res["failed"] is False, r
    assert res["changed"] is False
    assert res["health"]["overall"] == "unhealthy"
    api = res["health"]["checks"]["agent_api"]
    assert api["status"] == "unhealthy" and "did not answer" in api["reason"] and down.url in api["reason"]
    assert res["health"]["checks"]["docker"]["status"] == "unknown"
    assert res["health"]["agent"] == {}
    assert down.token not in r.output

    # a section that needs the agent fails clearly, and still returns the health it gathered
    r = ansible_run([{MOD: {"gather": ["health", "docker"]}}], verbosity=3, url=down.url, token=down.token, env=NO_BACKEND)
    assert r[0]["failed"] is True
    assert "docker section" in r[0]["msg"] and "did not answer" in r[0]["msg"], r[0]["msg"]
    assert r[0]["health"]["overall"] == "unhealthy"
    assert "Traceback" not in r.output and down.token not in r.output


def test_a_url_without_scheme_is_unhealthy_for_health_and_a_clear_failure_elsewhere(agent, ansible_run):
    """`127.0.0.1:PORT` where an agent really listens: requests would say "No connection adapters"; the client refuses
    the URL before sending anything, health reports it, and any module that needs the agent fails saying what to set."""
    bare = agent.url.replace("http://", "")
    r = ansible_run([{MOD: {"gather": ["health"]}},
                     {MOD: {"gather": ["health", "status"]}},
                     {"agentopia.dtma.dtma_exec": {"argv": ["true"]}}],
                    url=bare, token=agent.token, env=NO_BACKEND)
    assert len(r.results) == 3, r
    health = r[0]
    assert health["failed"] is False and health["changed"] is False, r
    assert health["health"]["overall"] == "unhealthy"
    api = health["health"]["checks"]["agent_api"]
    expected = "must start with http:// or https://, for example %s; got %r" % (agent.url, bare)
    assert api["status"] == "unhealthy" and "url option (or DTMA_URL)" in api["reason"] and expected in api["reason"], api
    assert health["health"]["checks"]["docker"]["status"] == "unknown" and health["health"]["agent"] == {}

    assert r[1]["failed"] is True and r[1]["msg"].startswith("could not gather the status section"), r[1]
    assert expected in r[1]["msg"] and r[1]["health"]["overall"] == "unhealthy"
    assert r[2]["failed"] is True and expected in r[2]["msg"], r[2]
    assert "No connection adapters" not in r.output and "Traceback" not in r.output and agent.token not in r.output


def test_wrong_token_fails_clearly_and_never_shows_the_token(agent, ansible_run):
    wrong = "wrong-token-" + "y" * 30
    r = ansible_run([{MOD: {}}], verbosity=3, url=agent.url, token=wrong, env=NO_BACKEND)
    assert r[0]["failed"] is True
    assert "401" in r[0]["msg"] and "token" in r[0]["msg"], r[0]["msg"]
    assert r[0]["status"] == 401
    assert r[0]["health"]["checks"]["agent_api"]["status"] == "healthy"  # /health needs no token
    assert wrong not in r.output and agent.token not in r.output

    r = ansible_run([{MOD: {"gather": ALL}}], verbosity=3, agent=agent, env=NO_BACKEND)
    assert r[0]["failed"] is False, r
    assert agent.token not in r.output


def test_docker_down_is_reported_not_failed(make_agent, ansible_run, docker_proxy):
    """The agent answers, Docker does not: the docker section carries the agent's account of it, health is unhealthy."""
    a = make_agent(env={"DOCKER_HOST": docker_proxy.docker_host})
    docker_proxy.stop()
    # the agent checks Docker in the background and sees the outage within 2 s
    assert wait_until(lambda: requests.get(a.url + "/health", timeout=5).status_code == 503, 2.5, 0.05)
    r = ansible_run([{MOD: {"gather": ["health", "docker"]}}], agent=a, env=NO_BACKEND)
    res = r[0]
    assert res["failed"] is False, r
    assert res["docker"]["docker_info_success"] is False and res["docker"]["error"]
    checks = res["health"]["checks"]
    assert checks["docker"]["status"] == "unhealthy"
    assert checks["agent_api"]["status"] == "unhealthy" and "503" in checks["agent_api"]["reason"]
    assert res["health"]["overall"] == "unhealthy"


# --- ssh and backend checks --------------------------------------------------------------------------------

def test_ssh_check_healthy_without_host_key_checking(agent, ansible_run, sshd):
    r = ansible_run([{MOD: {"gather": ["health"], **sshd.options(ssh_host_key_checking=False)}}], agent=agent, env=NO_BACKEND)
    res = r[0]
    assert res["failed"] is False, r
    ssh = res["health"]["checks"]["ssh"]
    assert ssh["status"] == "healthy", ssh
    assert ssh["response_time_ms"] > 0
    assert res["health"]["overall"] == "healthy"


def test_ssh_check_with_a_known_hosts_file(agent, ansible_run, sshd):
    r = ansible_run([{MOD: {"gather": ["health"], **sshd.options(ssh_known_hosts_file=str(sshd.known_hosts))}}],
                    agent=agent, env=NO_BACKEND)
    assert r[0]["health"]["checks"]["ssh"]["status"] == "healthy", r


def test_ssh_check_unknown_host_key_is_unhealthy(agent, ansible_run, sshd):
    r = ansible_run([{MOD: {"gather": ["health"], **sshd.options()}}], agent=agent, env=NO_BACKEND)
    res = r[0]
    assert res["failed"] is False, r
    ssh = res["health"]["checks"]["ssh"]
    assert ssh["status"] == "unhealthy"
    assert "known_hosts" in ssh["reason"] and str(sshd.port) in ssh["reason"], ssh
    assert res["health"]["overall"] == "degraded"


def test_ssh_check_closed_port_is_unhealthy(agent, ansible_run):
    port = free_port()
    r = ansible_run([{MOD: {"gather": ["health"], "ssh_host": "127.0.0.1", "ssh_port": port, "ssh_connect_timeout": 3}}],
                    agent=agent, env=NO_BACKEND)
    ssh = r[0]["health"]["checks"]["ssh"]
    assert ssh["status"] == "unhealthy" and str(port) in ssh["reason"], ssh


def test_backend_check(agent, ansible_run, backend):
    url = f"http://127.0.0.1:{backend.server_address[1]}/"
    closed = f"http://127.0.0.1:{free_port()}/"
    r = ansible_run([{MOD: {"gather": ["health"], "backend_url": url}},
                     {MOD: {"gather": ["health"], "backend_url": closed}},
                     {MOD: {"gather": ["health"]}}],
                    agent=agent, env={"AGENTOPIA_API_BASE_URL": url})
    ok, down, from_env = (r[i]["health"] for i in range(3))
    assert ok["checks"]["backend"]["status"] == "healthy" and "HTTP 404" in ok["checks"]["backend"]["reason"], ok
    assert ok["overall"] == "healthy"
    assert down["checks"]["backend"]["status"] == "unhealthy" and closed in down["checks"]["backend"]["reason"], down
    assert down["overall"] == "degraded"
    assert from_env["checks"]["backend"]["status"] == "healthy", from_env
    assert backend.seen and not any("Authorization" in h for h in backend.seen), "a token was sent to the backend"


def test_bad_log_lines_fails_clearly(agent, ansible_run):
    r = ansible_run([{MOD: {"gather": ["logs"], "log_lines": 0}}], agent=agent)
    assert r[0]["failed"] is True and "log_lines" in r[0]["msg"]


def test_runs_in_the_controllers_worker_without_a_python_per_host(agent, ansible_run):
    """The action plugin makes the HTTP call itself: with no usable Python for the task, a module (ping) fails and
    dtma_info still answers, because nothing is shipped to a host."""
    no_python = {"vars": {"ansible_python_interpreter": "/nonexistent/python3"}}
    r = ansible_run([{"ansible.builtin.ping": {}, **no_python},
                     {MOD: {"gather": ["health", "status"]}, **no_python}], agent=agent, env=NO_BACKEND)
    assert r[0]["failed"] is True and "/nonexistent/python3" in r[0]["module_stdout"] + r[0]["module_stderr"] + r[0]["msg"]
    assert r[1]["failed"] is False, r
    assert r[1]["health"]["overall"] == "healthy" and r[1]["health"]["agent"]["boot_id"]
