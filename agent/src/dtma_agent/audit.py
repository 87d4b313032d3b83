"""The audit trail: one structured (JSON) line per exec request, executed, blocked, dry-run or rejected.

Lines go to the agent's log (journald under systemd), to a size-rotated file when DTMA_LOG_DIR is set,
and to a ring buffer that GET /diagnostics/logs shows. Tokens are named by id, never written.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from pathlib import Path

from .errors import timestamp
from .logbuffer import RingBuffer

log = logging.getLogger("dtma.audit")
log.setLevel(logging.INFO)  # the trail is written whatever the log level of the rest
RECENT = RingBuffer(capacity=1000)
RECENT.setFormatter(logging.Formatter("%(message)s"))
log.addHandler(RECENT)


def open_file(log_dir: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 5) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "audit.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    os.chmod(path, 0o640)
    return path


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def record(*, client: str | None, token_id: str | None, command: str, verdict: str, rule: str | None,
           reason: str | None = None, exit_code: int | None = None, duration_ms: float | None = None,
           timed_out: bool | None = None, truncated: bool | None = None, secrets: list[str] = ()) -> dict:
    entry = {"event": "exec", "time": timestamp(), "client": client, "token_id": token_id,
             "command": redact(command, list(secrets)), "verdict": verdict, "rule": rule, "reason": reason,
             "exit_code": exit_code, "duration_ms": duration_ms, "timed_out": timed_out, "truncated": truncated}
    log.info(json.dumps(entry, separators=(",", ":")))
    return entry
