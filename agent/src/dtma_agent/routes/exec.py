from __future__ import annotations

import shlex

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .. import audit
from ..errors import ApiError, error_body, ok
from ..schemas import ExecRequest

router = APIRouter(tags=["exec"])

# Parsing costs up to ~40 us per character (~11 ms at this size): short commands, nearly all of them, are checked on
# the loop; longer ones (up to 16 KiB, ~0.7 s) in a worker thread so that they cannot stall other requests.
INLINE_CHECK_CHARS = 256


def _check(state, body: ExecRequest):
    if body.command is not None:
        return state.policy.check_command(body.command, state.policy_context)
    return state.policy.check_argv(body.argv, state.policy_context)


@router.post("/ssh/execute", summary="Run an operator command under the safety policy (or only check it: dry_run)")
async def execute(body: ExecRequest, request: Request):
    state = request.app.state
    command = body.command if body.command is not None else shlex.join(body.argv)
    if len(command) <= INLINE_CHECK_CHARS:
        verdict = _check(state, body)
    else:
        verdict = await run_in_threadpool(_check, state, body)
    trail = {"client": request.client.host if request.client else None, "token_id": request.state.token_id,
             "command": command, "rule": verdict.rule, "reason": verdict.reason,
             "secrets": list(state.settings.tokens.values())}

    if body.dry_run:
        audit.record(verdict="dry_run:" + ("allowed" if verdict.allowed else "blocked"), **trail)
        return ok(dry_run=True, command=command, allowed=verdict.allowed, reason=verdict.reason, rule=verdict.rule,
                  commands=verdict.commands, needs_shell=verdict.needs_shell)
    if not verdict.allowed:
        audit.record(verdict="blocked", **trail)
        return JSONResponse(error_body("command blocked by policy", verdict.reason, reason=verdict.reason,
                                       rule=verdict.rule, command=command), status_code=403)
    try:
        with state.executor.slot():
            # a shell only for compound commands the policy approved node by node; otherwise argv, no shell
            argv = verdict.run_argv
            result = await state.executor.run(argv, body.timeout / 1000)
    except ApiError as exc:  # all execution slots busy (429)
        audit.record(verdict="rejected", **{**trail, "reason": exc.message})
        raise
    audit.record(verdict="executed", exit_code=result.exit_code, duration_ms=result.duration_ms,
                 timed_out=result.timed_out, truncated=result.truncated, **trail)
    return JSONResponse(ok(success=result.exit_code == 0 and not result.timed_out, command=command,
                           exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr,
                           duration_ms=result.duration_ms, truncated=result.truncated, timed_out=result.timed_out,
                           shell=verdict.needs_shell))
