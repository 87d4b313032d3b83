from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import __version__, audit
from ..errors import timestamp

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness, Docker reachability and the audit file (no authentication); 503 when "
                               "Docker is unreachable, 200 with status degraded when only the audit file cannot be "
                               "written. Docker is pinged in the background once a second, not per request: "
                               "docker_check says how old that finding is (never more than 2 s) and why it failed")
async def health(request: Request):
    # async: it only reads memory, so it skips the thread pool a sync route is run in
    state = request.app.state
    docker_ok, age_ms, error = state.docker_watch.state()
    audit_log = audit.file_state()
    healthy = docker_ok and (audit_log is None or audit_log["writable"])
    body = {"status": "ok" if healthy else "degraded", "docker": docker_ok,
            "docker_check": {"age_ms": age_ms, "error": error}, "audit_log": audit_log,
            "version": __version__, "uptime_s": round(time.monotonic() - state.started_monotonic, 1),
            "boot_id": state.boot_id, "timestamp": timestamp()}
    return JSONResponse(body, status_code=200 if docker_ok else 503)
