from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..docker_service import docker_failures
from ..errors import error_response, ok
from ..metrics import system_metrics

router = APIRouter(tags=["status"])


@router.get("/status", summary="Agent status, managed containers and system metrics")
def status(request: Request):
    state = request.app.state
    settings = state.settings
    facts = dict(version=__version__, service="DTMA", boot_id=state.boot_id,
                 environment={"hasAuthToken": "agent" in settings.tokens, "hasApiKey": "backend" in settings.tokens,
                              "hasApiBaseUrl": bool(settings.api_base_url), "port": settings.port},
                 system_metrics=system_metrics())
    try:
        managed = state.docker.managed()
    except docker_failures() as exc:
        # metrics are still worth returning; the status code says Docker is not reachable
        return error_response(503, "docker unavailable", str(exc), status="degraded", docker=False, tool_instances=[],
                              **facts)
    # already JSON-ready: a JSONResponse skips FastAPI's slower generic encoder on the hot path
    return JSONResponse(ok(status="healthy", **facts, tool_instances=managed, docker=True))


@router.get("/system", summary="System metrics")
def system():
    metrics = system_metrics()
    return ok(**metrics, system_metrics=metrics)
