from __future__ import annotations

import shlex

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import audit
from ..errors import ApiError, error_body, ok
from ..schemas import ExecRequest

router = APIRouter(tags=["exec"])


@router.post("/ssh/execute", summary="Run an operator command under the safety policy (or only check it: dry_run)")
def execute(body: ExecRequest, request: Request):
    state = request.app.state
    command = body.command if body.command is not None else shlex.join(body.argv)
    if body.command is not None:
        verdict = state.policy.check_command(body.command, state.policy_context)
    else:
        verdict = state.policy.check_argv(body.argv, state.policy_context)
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
            argv = ["/bin/sh", "-c", body.command] if verdict.needs_shell else (body.argv or verdict.commands[0]["argv"])
            result = state.executor.run(argv, body.timeout / 1000)
    except ApiError as exc:  # all execution slots busy (429)
        audit.record(verdict="rejected", **{**trail, "reason": exc.message})
        raise
    audit.record(verdict="executed", exit_code=result.exit_code, duration_ms=result.duration_ms,
                 timed_out=result.timed_out, truncated=result.truncated, **trail)
    return ok(success=result.exit_code == 0 and not result.timed_out, command=command, exit_code=result.exit_code,
              stdout=result.stdout, stderr=result.stderr, duration_ms=result.duration_ms,
              truncated=result.truncated, timed_out=result.timed_out, shell=verdict.needs_shell)
