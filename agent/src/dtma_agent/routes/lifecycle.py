from __future__ import annotations

import logging
import os
import signal
import threading

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import releases
from ..errors import ok
from ..schemas import RedeployRequest

router = APIRouter(tags=["lifecycle"])
log = logging.getLogger("dtma.lifecycle")
EXIT_DELAY_S = 0.3


def exit_soon() -> None:
    """Exit after the response is on its way; the service manager (Restart=always) starts us again."""
    threading.Timer(EXIT_DELAY_S, os.kill, (os.getpid(), signal.SIGTERM)).start()


@router.post("/restart", status_code=202, summary="Exit so the service manager restarts the agent")
def restart(request: Request):
    log.info("restart requested (token %s)", request.state.token_id)
    exit_soon()
    return JSONResponse(ok(message="restarting: the agent exits now and its service manager starts it again",
                           boot_id=request.app.state.boot_id), status_code=202)


@router.post("/redeploy", status_code=202, summary="Switch to another installed release and restart")
def redeploy(body: RedeployRequest, request: Request):
    result = releases.switch(request.app.state.settings.dtma_home, body.version)
    if not result["changed"]:
        return JSONResponse(ok(message=f"release {body.version} is already current; nothing was done", data=result),
                            status_code=200)
    log.info("redeploy: current -> %s (previous %s); restarting", result["current"], result["previous"])
    exit_soon()
    return JSONResponse(ok(message=f"switched to release {result['current']}; restarting", data=result,
                           boot_id=request.app.state.boot_id), status_code=202)
