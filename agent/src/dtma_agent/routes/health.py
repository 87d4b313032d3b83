from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import __version__, audit
from ..errors import timestamp

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness, Docker reachability and the audit file (no authentication); 503 when "
                               "Docker is unreachable, 200 with status degraded when only the audit file cannot be "
                               "written")
def health(request: Request):
    state = request.app.state
    docker_ok = state.docker.ping()
    audit_log = audit.file_state()
    healthy = docker_ok and (audit_log is None or audit_log["writable"])
    body = {"status": "ok" if healthy else "degraded", "docker": docker_ok, "audit_log": audit_log,
            "version": __version__, "uptime_s": round(time.monotonic() - state.started_monotonic, 1),
            "boot_id": state.boot_id, "timestamp": timestamp()}
    return JSONResponse(body, status_code=200 if docker_ok else 503)
