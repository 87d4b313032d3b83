"""Running one operator command: the policy decides, the sandbox runs, the audit trail records every outcome.
Shared by POST /ssh/execute and `dtma-agent exec` (the SSH fallback), so both give the same guarantee."""

from __future__ import annotations

import shlex

from starlette.concurrency import run_in_threadpool

from . import audit
from .errors import ApiError, error_body, ok
from .schemas import ExecRequest

# Parsing costs up to ~40 us per character (~11 ms at this size): short commands, nearly all of them, are checked on
# the loop; longer ones (up to 16 KiB, ~0.7 s) in a worker thread so that they cannot stall other requests.
INLINE_CHECK_CHARS = 256


def _check(state, body: ExecRequest):
    if body.command is not None:
        return state.policy.check_command(body.command, state.policy_context)
    return state.policy.check_argv(body.argv, state.policy_context)


def _audit_docker(trail: dict):
    """The Docker filter's denials are audited like the policy's, under the command that caused them."""
    def record(decision: dict) -> None:
        if not decision.get("allowed"):
            reason = f"{decision.get('method')} {decision.get('path')}: {decision.get('reason')}"
            audit.record(verdict="docker_denied", **{**trail, "rule": "docker_filter", "reason": reason})
    return record


async def execute(state, body: ExecRequest, client: str | None, token_id: str | None) -> tuple[int, dict]:
    """Check, then run confined (or only answer the verdict), auditing every outcome: (HTTP status, body).
    `state` holds policy, policy_context, executor and settings (app.state, or the CLI's own)."""
    command = body.command if body.command is not None else shlex.join(body.argv)
    if len(command) <= INLINE_CHECK_CHARS:
        verdict = _check(state, body)
    else:
        verdict = await run_in_threadpool(_check, state, body)
    trail = {"client": client, "token_id": token_id,
             "command": command, "rule": verdict.rule, "reason": verdict.reason,
             "secrets": list(state.settings.tokens.values())}

    if body.dry_run:
        audit.record(verdict="dry_run:" + ("allowed" if verdict.allowed else "blocked"), **trail)
        return 200, ok(dry_run=True, command=command, allowed=verdict.allowed, reason=verdict.reason,
                       rule=verdict.rule, commands=verdict.commands, needs_shell=verdict.needs_shell)
    if not verdict.allowed:
        audit.record(verdict="blocked", **trail)
        return 403, error_body("command blocked by policy", verdict.reason, reason=verdict.reason, rule=verdict.rule,
                               command=command)
    try:
        with state.executor.slot():
            # what was checked: argv for a simple command, bash with a script regenerated from the checked tree
            result = await state.executor.run(verdict.run_argv, body.timeout / 1000, on_docker_decision=_audit_docker(trail))
    except ApiError as exc:  # all execution slots busy (429), or no sandbox (503)
        audit.record(verdict="rejected", status=exc.status, **{**trail, "reason": exc.message})
        raise
    audit.record(verdict="executed", exit_code=result.exit_code, duration_ms=result.duration_ms,
                 timed_out=result.timed_out, truncated=result.truncated, **trail)
    return 200, ok(success=result.exit_code == 0 and not result.timed_out, command=command, exit_code=result.exit_code,
                   stdout=result.stdout, stderr=result.stderr, duration_ms=result.duration_ms,
                   truncated=result.truncated, timed_out=result.timed_out, shell=verdict.needs_shell)
