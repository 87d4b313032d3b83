"""Runs one approved command: its own process group, a scrubbed environment, capped output, a hard timeout.

Nothing the command starts outlives the request: when it ends, times out or the request is cancelled,
whatever is left of its process group is killed.

Event-driven on the agent's loop, with no thread per command: the pipes and a pidfd are watched with
add_reader. (uvloop's own subprocess support forks the whole agent and costs ~4 ms per command; Popen uses
vfork, ~1 ms.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from .errors import ApiError

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KILL_GRACE_S = 2.0
PIPE_DRAIN_S = 5.0  # a process that left the group but kept our pipes open cannot hold the request longer
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


class _Capture:
    """Reads a pipe to the end on the loop, keeping at most `cap` bytes (the rest is drained so the child never
    blocks); `done` resolves at end of file."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pipe, cap: int):
        self.loop, self.pipe, self.fd, self.cap = loop, pipe, pipe.fileno(), cap
        self.data, self.truncated = bytearray(), False
        self.done = loop.create_future()
        os.set_blocking(self.fd, False)
        loop.add_reader(self.fd, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > max(room, 0):
            self.truncated = True

    def close(self) -> None:
        if not self.done.done():
            self.loop.remove_reader(self.fd)
            self.pipe.close()
            self.done.set_result(None)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _exited(loop: asyncio.AbstractEventLoop, pid: int) -> asyncio.Future:
    """Resolves when the child has exited, WITHOUT reaping it: while it is a zombie its pid (= the group id)
    cannot be reused, so the final killpg cannot hit a stranger."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (Linux < 5.3): a waiting thread instead
        return asyncio.ensure_future(loop.run_in_executor(None, os.waitid, os.P_PID, pid, os.WEXITED | os.WNOWAIT))
    future = loop.create_future()

    def release(_future=None):
        nonlocal pidfd
        if pidfd is not None:  # once only: a closed fd number may already belong to someone else
            loop.remove_reader(pidfd)
            os.close(pidfd)
            pidfd = None

    def readable():
        release()
        if not future.done():
            future.set_result(None)

    loop.add_reader(pidfd, readable)
    future.add_done_callback(release)  # also when cancelled
    return future


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

    async def run(self, argv: list[str], timeout_s: float) -> ExecResult:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=child_environment(self.scratch_dir), cwd=self.scratch_dir,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            return ExecResult(127, "", f"cannot run {argv[0]}: {exc.strerror}", 0.0, False, False)
        out, err = _Capture(loop, proc.stdout, self.output_cap), _Capture(loop, proc.stderr, self.output_cap)
        exited = _exited(loop, proc.pid)
        timed_out = False

        def expire():
            nonlocal timed_out
            if exited.done():
                return  # it ended in time; the pipes are still being drained
            timed_out = True
            _kill_group(proc.pid, signal.SIGTERM)
            timers.append(loop.call_later(KILL_GRACE_S, _kill_group, proc.pid, signal.SIGKILL))

        timers = [loop.call_later(timeout_s, expire)]
        try:
            await exited
            # whatever the command left running in its group (background jobs, grandchildren) goes now
            _kill_group(proc.pid, signal.SIGKILL)
            if not (out.done.done() and err.done.done()):
                await asyncio.wait([out.done, err.done], timeout=PIPE_DRAIN_S)
        finally:  # also when the request is cancelled: nothing of the command survives it
            for timer in timers:
                timer.cancel()
            _kill_group(proc.pid, signal.SIGKILL)
            exited.cancel()
            out.close()
            err.close()
        proc.wait()  # reaps the zombie at once
        return ExecResult(exit_code=proc.returncode, stdout=out.text(), stderr=err.text(),
                          duration_ms=round((time.monotonic() - started) * 1000, 1),
                          truncated=out.truncated or err.truncated, timed_out=timed_out)
