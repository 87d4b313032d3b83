from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..errors import timestamp

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and Docker reachability (no authentication)")
def health(request: Request):
    state = request.app.state
    docker_ok = state.gateway.ping()
    body = {"status": "ok" if docker_ok else "degraded", "docker": docker_ok, "version": __version__,
            "uptime_s": round(time.monotonic() - state.started_monotonic, 1), "boot_id": state.boot_id,
            "timestamp": timestamp()}
    return JSONResponse(body, status_code=200 if docker_ok else 503)
