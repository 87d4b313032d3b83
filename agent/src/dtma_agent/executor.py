"""Runs one approved command: its own process group, a scrubbed environment, capped output, a hard timeout.

Nothing the command starts outlives the request: when it ends or times out, whatever is left of its
process group is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from .errors import ApiError

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KILL_GRACE_S = 2.0
# Only these variables reach a child; everything else (tokens, API keys, the agent's own settings) stays out.
PASSED_THROUGH = ("DOCKER_HOST", "TZ")


@dataclass
class ExecResult:
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: float
    truncated: bool
    timed_out: bool


def child_environment(scratch_dir: str) -> dict:
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": scratch_dir, "TERM": "dumb",
           "PAGER": "cat", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
    env.update({k: os.environ[k] for k in PASSED_THROUGH if k in os.environ})
    return env


class _Capture(threading.Thread):
    """Reads a pipe to the end, keeping at most `cap` bytes (the rest is drained so the child never blocks)."""

    def __init__(self, pipe, cap: int):
        super().__init__(daemon=True)
        self.pipe, self.cap, self.data, self.truncated = pipe, cap, bytearray(), False

    def run(self) -> None:
        for chunk in iter(lambda: self.pipe.read1(65536), b""):
            room = self.cap - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > max(room, 0):
                self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class Executor:
    def __init__(self, max_concurrent: int = 8, output_cap: int = 1024 * 1024, scratch_dir: str = "/tmp"):
        self.max_concurrent, self.output_cap, self.scratch_dir = max_concurrent, output_cap, scratch_dir
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def slot(self):
        """A context manager holding one of the N execution slots; 429 when all are busy (no queueing)."""
        executor = self

        class _Slot:
            def __enter__(self):
                if not executor._slots.acquire(blocking=False):
                    raise ApiError(429, "too many executions",
                                   f"{executor.max_concurrent} commands are already running; retry shortly",
                                   headers={"Retry-After": "1"})

            def __exit__(self, *exc):
                executor._slots.release()

        return _Slot()

    def run(self, argv: list[str], timeout_s: float) -> ExecResult:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=child_environment(self.scratch_dir), cwd=self.scratch_dir,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            return ExecResult(127, "", f"cannot run {argv[0]}: {exc.strerror}", 0.0, False, False)
        out, err = _Capture(proc.stdout, self.output_cap), _Capture(proc.stderr, self.output_cap)
        out.start()
        err.start()
        finished, expired = threading.Event(), threading.Event()

        def expire():
            if finished.is_set():
                return  # it ended just as the timer fired
            expired.set()
            _kill_group(proc.pid, signal.SIGTERM)
            if not finished.wait(KILL_GRACE_S):
                _kill_group(proc.pid, signal.SIGKILL)

        # A blocking wait plus a timer: Popen.wait(timeout=) polls with sleeps of up to 50 ms.
        timer = threading.Timer(timeout_s, expire)
        timer.daemon = True
        timer.start()
        proc.wait()
        finished.set()
        timer.cancel()
        timed_out = expired.is_set()
        # whatever the command left running in its group (background jobs, grandchildren) goes now
        _kill_group(proc.pid, signal.SIGKILL)
        out.join(5)
        err.join(5)
        return ExecResult(exit_code=proc.returncode, stdout=out.text(), stderr=err.text(),
                          duration_ms=round((time.monotonic() - started) * 1000, 1),
                          truncated=out.truncated or err.truncated, timed_out=timed_out)
