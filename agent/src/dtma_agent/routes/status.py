from __future__ import annotations

import docker.errors
import requests
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..errors import DockerUnavailable, ok
from ..metrics import system_metrics

router = APIRouter(tags=["status"])


@router.get("/status", summary="Agent status, managed containers and system metrics")
def status(request: Request):
    state = request.app.state
    settings = state.settings
    body = ok(status="healthy", version=__version__, service="DTMA", boot_id=state.boot_id,
              environment={"hasAuthToken": "agent" in settings.tokens, "hasApiKey": "backend" in settings.tokens,
                           "hasApiBaseUrl": bool(settings.api_base_url), "port": settings.port},
              tool_instances=[], system_metrics=system_metrics())
    try:
        body["tool_instances"] = state.gateway.managed()
        body["docker"] = True
    except (DockerUnavailable, docker.errors.DockerException, requests.RequestException) as exc:
        # metrics are still worth returning; the status code says Docker is not reachable
        body.update(success=False, status="degraded", docker=False, error="docker unavailable", message=str(exc))
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)  # already JSON-ready: skips FastAPI's slower generic encoder on the hot path


@router.get("/system", summary="System metrics")
def system():
    metrics = system_metrics()
    return ok(**metrics, system_metrics=metrics)
