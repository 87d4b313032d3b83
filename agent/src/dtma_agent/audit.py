"""The audit trail: one structured (JSON) line per exec request, executed, blocked, dry-run or rejected.

Lines go to the agent's log (journald under systemd), to a size-rotated file when DTMA_LOG_DIR is set,
and to a ring buffer that GET /diagnostics/logs shows. Tokens are named by id, never written.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from . import prometheus
from .errors import timestamp
from .logbuffer import RingBuffer

log = logging.getLogger("dtma.audit")
log.setLevel(logging.INFO)  # the trail is written whatever the log level of the rest
RECENT_CAPACITY = 1000
RECENT = RingBuffer(capacity=RECENT_CAPACITY)
RECENT.setFormatter(logging.Formatter("%(message)s"))
log.addHandler(RECENT)


class AuditFile(logging.handlers.RotatingFileHandler):
    """The audit file, which remembers whether its last write worked: a full or unwritable disk must not stop the
    agent (the journal still gets every line), but /health says so and the journal says why, once per outage."""

    def __init__(self, path: Path, max_bytes: int, backups: int):
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.error: str | None = None
        self.since: str | None = None
        self._failed = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed = False
        super().emit(record)  # a failure (open, write or flush: ENOSPC shows at the flush) calls handleError
        if not self._failed and self.error:
            logging.getLogger("dtma.api").warning("audit log %s is writable again", self.baseFilename)
            self.error = self.since = None

    def handleError(self, record) -> None:  # noqa: N802 - logging's name
        self._failed = True
        exc = sys.exc_info()[1]
        if self.error is None:
            self.since = timestamp()
            logging.getLogger("dtma.api").error("audit log %s cannot be written: %s; audit lines still go to the "
                                                "journal", self.baseFilename, exc)
        self.error = str(exc) if exc else "write failed"
        if self.stream:  # drop what the failed write left buffered, so the next line is tried afresh
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None

    def state(self) -> dict:
        return {"path": self.baseFilename, "writable": self.error is None, "error": self.error, "since": self.since}


FILE: AuditFile | None = None


def open_file(log_dir: Path, max_bytes: int = 10 * 1024 * 1024, backups: int = 5) -> Path:
    global FILE  # pylint: disable=global-statement  # one audit file per process, like the logger itself
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "audit.log"
    if FILE is not None:
        log.removeHandler(FILE)
        FILE.close()
    FILE = AuditFile(path, max_bytes, backups)
    FILE.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(FILE)
    os.chmod(path, 0o640)
    return path


def file_state() -> dict | None:
    """The audit file's state for /health; None when the agent keeps no audit file."""
    return FILE.state() if FILE is not None else None


VERDICTS = ("executed", "blocked", "rejected", "docker_denied", "dry_run:allowed", "dry_run:blocked")


def recent(verdicts: set[str], limit: int) -> list[dict]:
    """The newest `limit` entries of this process's in-memory trail whose verdict is one of `verdicts`, newest
    first (what a fleet report shows; the complete trail is the journal and the audit file)."""
    found = []
    for line in reversed(RECENT.tail(RECENT_CAPACITY)):
        entry = json.loads(line)
        if entry.get("verdict") in verdicts:
            found.append(entry)
            if len(found) == limit:
                break
    return found


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def record(*, client: str | None, token_id: str | None, command: str, verdict: str, rule: str | None,
           reason: str | None = None, exit_code: int | None = None, duration_ms: float | None = None,
           timed_out: bool | None = None, truncated: bool | None = None, status: int | None = None,
           secrets: list[str] = ()) -> dict:
    """One audit line (and one count in dtma_exec_verdicts_total); `status` is the HTTP status of a rejection."""
    entry = {"event": "exec", "time": timestamp(), "client": client, "token_id": token_id,
             "command": redact(command, list(secrets)), "verdict": verdict, "rule": rule, "reason": reason,
             "exit_code": exit_code, "duration_ms": duration_ms, "timed_out": timed_out, "truncated": truncated}
    if status is not None:
        entry["status"] = status
    log.info(json.dumps(entry, separators=(",", ":")))
    prometheus.count_exec(verdict, rule, timed_out, truncated, status)
    return entry
