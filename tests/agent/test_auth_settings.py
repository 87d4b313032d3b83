"""Authentication on every route, and the settings the `dtma-agent` command refuses to start with."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from dtma_testing import free_port, wait_until

from dtma_agent import __version__

AGENT_BIN = Path(sys.executable).with_name("dtma-agent")
OPEN_PATHS = ("/health",)
DOC_PATHS = ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect")


def plain_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "AGENTOPIA_", "BACKEND_TO_DTMA"))}
    env.update(extra)
    return env


def run_cli(*args, env: dict, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(AGENT_BIN), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def unauthenticated(agent, method: str, path: str, headers: dict | None = None) -> requests.Response:
    return requests.request(method, agent.url + path, headers=headers or {}, timeout=10)


# --- the bearer token -----------------------------------------------------------------------------------

def test_missing_token_is_401_saying_so(agent):
    r = unauthenticated(agent, "GET", "/status")
    assert r.status_code == 401
    out = r.json()
    assert out["success"] is False and out["error"] == "missing bearer token" and out["timestamp"]
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")


def test_wrong_token_is_401_saying_so(agent):
    r = unauthenticated(agent, "GET", "/status", {"Authorization": f"Bearer {secrets.token_hex(24)}"})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid bearer token"


@pytest.mark.parametrize("header", ["Basic x", "Bearer", "Bearer    ", "Token abc", "bearer", "Bearerxyz"])
def test_malformed_header_is_401(agent, header):
    r = unauthenticated(agent, "GET", "/status", {"Authorization": header})
    assert r.status_code == 401, r.text
    assert r.json()["success"] is False
    assert r.json()["error"] in ("malformed authorization header", "missing bearer token", "invalid bearer token")


def test_basic_with_the_right_token_is_401(agent):
    r = unauthenticated(agent, "GET", "/status", {"Authorization": f"Basic {agent.token}"})
    assert r.status_code == 401


def test_token_prefix_or_extension_is_401(agent):
    for supplied in (agent.token[:-1], agent.token + "x", agent.token.upper()):
        r = unauthenticated(agent, "GET", "/status", {"Authorization": f"Bearer {supplied}"})
        assert r.status_code == 401, supplied


def test_right_token_is_accepted_scheme_case_insensitively(agent):
    for scheme in ("Bearer", "bearer", "BEARER"):
        r = unauthenticated(agent, "GET", "/status", {"Authorization": f"{scheme} {agent.token}"})
        assert r.status_code == 200, scheme


def test_backend_token_is_accepted(make_agent):
    backend = secrets.token_hex(24)
    a = make_agent(env={"BACKEND_TO_DTMA_API_KEY": backend})
    r = unauthenticated(a, "GET", "/status", {"Authorization": f"Bearer {backend}"})
    assert r.status_code == 200, r.text
    assert r.json()["environment"]["hasApiKey"] is True
    assert unauthenticated(a, "GET", "/status", {"Authorization": f"Bearer {a.token}"}).status_code == 200


def test_health_needs_no_token(agent):
    r = unauthenticated(agent, "GET", "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_openapi_is_served_with_the_token(agent):
    r = agent.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["info"]["version"] == __version__
    assert "/tools" in schema["paths"] and "/health" in schema["paths"]


@pytest.mark.parametrize("path", DOC_PATHS)
def test_schema_and_docs_need_the_token(agent, path):
    """The README says only /health is public: the schema and the docs describe the API to whoever reads them."""
    r = unauthenticated(agent, "GET", path)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "missing bearer token"


def secured_routes(schema: dict) -> list[tuple[str, str]]:
    routes = []
    for path, methods in schema["paths"].items():
        if path in OPEN_PATHS:
            continue
        for method in methods:
            if method in ("get", "post", "put", "patch", "delete"):
                routes.append((method.upper(), re.sub(r"\{[^}]+\}", "dtmatest-nothing", path)))
    return routes


def test_every_route_in_the_schema_but_health_needs_the_token(agent, docker_api):
    schema = agent.get("/openapi.json").json()
    routes = secured_routes(schema)
    # the schema must really list the API, or this test proves nothing
    assert len(routes) >= 15
    assert {("POST", "/restart"), ("POST", "/redeploy"), ("GET", "/diagnostics/logs"),
            ("POST", "/tools"), ("DELETE", "/tools/dtmatest-nothing")} <= set(routes)
    for method, path in routes:
        for headers, error in (({}, "missing bearer token"),
                               ({"Authorization": f"Bearer {secrets.token_hex(24)}"}, "invalid bearer token")):
            r = unauthenticated(agent, method, path, headers)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.json()["error"] == error, (method, path)
    # POST /restart without a token must not have restarted the agent, nor anything have been created
    assert agent.proc.poll() is None
    assert agent.answers()
    assert docker_api.containers(all=True, filters={"name": "dtmatest-nothing"}) == []


def test_docs_are_served_with_the_token(agent):
    assert agent.get("/docs").status_code == 200


def test_malformed_body_without_token_is_401(agent):
    r = requests.post(agent.url + "/tools", data="{not json", headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 401, r.text


# --- the command line -----------------------------------------------------------------------------------

def assert_refused(done: subprocess.CompletedProcess, variable: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    assert "refusing to start" in lines[0]


def test_cli_refuses_without_a_token():
    assert_refused(run_cli("--port", str(free_port()), env=plain_env()), "DTMA_BEARER_TOKEN")


def test_cli_refuses_an_empty_token():
    assert_refused(run_cli("--port", str(free_port()), env=plain_env(DTMA_BEARER_TOKEN="")), "DTMA_BEARER_TOKEN")


def test_cli_refuses_a_short_token():
    done = run_cli("--port", str(free_port()), env=plain_env(DTMA_BEARER_TOKEN="a1b2c3d4e5"))
    assert_refused(done, "DTMA_BEARER_TOKEN")
    assert "short" in done.stderr
    assert "a1b2c3d4e5" not in done.stderr


@pytest.mark.parametrize("token", ["changeme" * 4, "replace-me-" + secrets.token_hex(12), "a" * 40, "ab" * 20])
def test_cli_refuses_a_placeholder_token(token):
    done = run_cli("--port", str(free_port()), env=plain_env(DTMA_BEARER_TOKEN=token))
    assert_refused(done, "DTMA_BEARER_TOKEN")
    assert token not in done.stderr


def test_cli_refuses_a_short_backend_key():
    env = plain_env(DTMA_BEARER_TOKEN=secrets.token_hex(24), BACKEND_TO_DTMA_API_KEY="short-key")
    assert_refused(run_cli("--port", str(free_port()), env=env), "BACKEND_TO_DTMA_API_KEY")


def test_cli_version():
    done = run_cli("--version", env=plain_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"dtma-agent {__version__}"


@pytest.fixture
def spawn(tmp_path):
    """Start `dtma-agent` with arguments of the test's choosing; stopped at the end."""
    procs: list[subprocess.Popen] = []

    def start(*args, env: dict) -> subprocess.Popen:
        log = open(tmp_path / f"cli-{len(procs)}.log", "wb")
        proc = subprocess.Popen([str(AGENT_BIN), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.log_file = log
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        proc.log_file.close()


def test_cli_env_file_supplies_the_token_and_wins_over_the_environment(tmp_path, spawn):
    file_token, env_token = secrets.token_hex(24), secrets.token_hex(24)
    env_file = tmp_path / "dtma.env"
    env_file.write_text(f"# DTMA settings\n\nexport DTMA_BEARER_TOKEN=\"{file_token}\"\nOFFLINE_MODE=true\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn("--host", "127.0.0.1", "--port", str(port), "--env-file", str(env_file),
                 env=plain_env(DTMA_BEARER_TOKEN=env_token))

    def health():
        try:
            return requests.get(url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None  # stop waiting if it died

    assert wait_until(health, 15)
    assert proc.poll() is None
    assert requests.get(url + "/status", headers={"Authorization": f"Bearer {file_token}"}, timeout=10).status_code == 200
    assert requests.get(url + "/status", headers={"Authorization": f"Bearer {env_token}"}, timeout=10).status_code == 401


def test_cli_env_file_alone_is_enough(tmp_path, spawn):
    token = secrets.token_hex(24)
    env_file = tmp_path / "only.env"
    env_file.write_text(f"DTMA_BEARER_TOKEN={token}\n")
    port = free_port()
    proc = spawn("--host", "127.0.0.1", "--port", str(port), "--env-file", str(env_file), env=plain_env())

    def answers():
        try:
            return requests.get(f"http://127.0.0.1:{port}/status", timeout=1,
                                headers={"Authorization": f"Bearer {token}"}).status_code == 200
        except requests.RequestException:
            return proc.poll() is not None

    assert wait_until(answers, 15) and proc.poll() is None


def test_cli_env_file_with_a_bad_line_is_refused_naming_the_line(tmp_path):
    env_file = tmp_path / "bad.env"
    env_file.write_text(f"# comment\nDTMA_BEARER_TOKEN={secrets.token_hex(24)}\nthis line is not an assignment\n")
    done = run_cli("--port", str(free_port()), "--env-file", str(env_file), env=plain_env())
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 3" in lines[0] and str(env_file) in lines[0]


def test_cli_env_file_missing_is_refused(tmp_path):
    done = run_cli("--port", str(free_port()), "--env-file", str(tmp_path / "absent.env"),
                   env=plain_env(DTMA_BEARER_TOKEN=secrets.token_hex(24)))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "absent.env" in done.stderr


def test_cli_env_file_with_a_weak_token_is_refused(tmp_path):
    env_file = tmp_path / "weak.env"
    env_file.write_text("DTMA_BEARER_TOKEN=changemechangemechangeme\n")
    done = run_cli("--port", str(free_port()), "--env-file", str(env_file),
                   env=plain_env(DTMA_BEARER_TOKEN=secrets.token_hex(24)))
    assert_refused(done, "DTMA_BEARER_TOKEN")


# --- secrets stay out of the log ------------------------------------------------------------------------

def test_tokens_never_reach_the_log(make_agent):
    backend, wrong = secrets.token_hex(24), secrets.token_hex(24)
    a = make_agent(env={"BACKEND_TO_DTMA_API_KEY": backend})
    assert a.get("/status").status_code == 200
    assert a.get("/tools/status").status_code == 200
    assert requests.get(a.url + "/status", headers={"Authorization": f"Bearer {backend}"}, timeout=10).status_code == 200
    assert requests.get(a.url + "/status", headers={"Authorization": f"Bearer {wrong}"}, timeout=10).status_code == 401
    assert requests.get(a.url + "/diagnostics/docker", headers={"Authorization": f"Basic {wrong}"},
                        timeout=10).status_code == 401
    assert a.post("/tools", json={"dockerImageUrl": ""}).status_code == 422
    logs = a.get("/diagnostics/logs", params={"lines": 10000})
    assert logs.status_code == 200
    # the access log line for the 401 is written once the response is out
    assert wait_until(lambda: '"GET /status HTTP/1.1" 401' in a.log(), 5), a.log()
    text = a.log()
    assert "listening" in text
    for secret in (a.token, backend, wrong):
        assert secret not in text
        assert secret not in logs.text
