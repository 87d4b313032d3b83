"""The agent starts, and answers /health, without the Docker SDK and requests (sdk.py imports them on first use),
and the errors those libraries raise later still map to their statuses."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import docker.errors
import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dtma_agent.errors import install_handlers

# `dtma-agent` as systemd starts it, with uvicorn.run swapped for requests made in the same process, so that the
# process's own sys.modules can be read between them
DRIVER = """
import json, sys
import uvicorn
from fastapi.testclient import TestClient

def serve(app, **_options):
    seen = {}
    watched = ("docker", "requests", "pydantic.v1", "charset_normalizer", "bashlex")
    with TestClient(app) as client:
        seen["started"] = [m for m in watched if sys.modules.get(m)]
        seen["health"] = client.get("/health").status_code
        seen["after_health"] = [m for m in watched if sys.modules.get(m)]
        headers = {"Authorization": "Bearer " + sys.argv[1]}
        seen["status"] = client.get("/status", headers=headers).status_code
        seen["after_status"] = [m for m in watched if sys.modules.get(m)]
    print(json.dumps(seen))

uvicorn.run = serve
from dtma_agent.cli import main
main(["--host", "127.0.0.1", "--port", "8999"])
"""


def test_start_and_health_need_neither_the_sdk_nor_requests():
    token = secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "BACKEND_TO_DTMA"))}
    env.update(DTMA_BEARER_TOKEN=token, OFFLINE_MODE="true")
    out = subprocess.run([sys.executable, "-c", DRIVER, token], env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["started"] == [] and seen["after_health"] == [], seen
    assert seen["health"] == 200
    # the first route that talks to Docker loads the SDK (and requests under it), and works
    assert seen["status"] == 200 and {"docker", "requests"} <= set(seen["after_status"]), seen
    # modules the libraries import for features the agent does not use stay out (cli.keep_out_unused_modules)
    assert not {"pydantic.v1", "charset_normalizer"} & set(seen["after_status"]), seen
    assert "Unable to find acceptable character detection" not in out.stderr


def _raising(exc: Exception) -> TestClient:
    app = FastAPI()
    install_handlers(app)

    @app.get("/boom")
    def boom():
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("exc, status, error", [
    (docker.errors.NotFound("No such container: x"), 404, "not found"),
    (docker.errors.APIError("conflict", explanation="name in use"), 502, "docker error"),
    (requests.exceptions.ConnectionError("refused"), 503, "docker unavailable"),
    (FileNotFoundError(2, "No such file or directory"), 500, "internal error"),
    (RuntimeError("bug"), 500, "internal error"),
])
def test_library_errors_keep_their_statuses(exc, status, error):
    r = _raising(exc).get("/boom")
    assert r.status_code == status and r.json()["error"] == error and r.json()["success"] is False
    assert "Traceback" not in r.text
