"""POST /ssh/execute: the route; what it does is commands.execute (shared with `dtma-agent exec`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import commands
from ..schemas import ExecRequest

router = APIRouter(tags=["exec"])


@router.post("/ssh/execute", summary="Run an operator command under the safety policy (or only check it: dry_run)")
async def execute(body: ExecRequest, request: Request):
    status, payload = await commands.execute(request.app.state, body, request.client.host if request.client else None,
                                             request.state.token_id)
    return JSONResponse(payload, status_code=status)
