"""Runs one approved command in the sandbox (sandbox.py): the agent hands the launcher the argv and the two ends
of its output pipes and reads them here, capped, while the launcher confines, times out and reaps.

Event-driven on the agent's loop, with no thread per command: the pipes and the launcher's connection are watched
with add_reader. Nothing the command starts outlives the request: the sandbox's PID namespace dies with it, when it
ends, times out, or the request is cancelled (closing the connection kills it).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from .errors import ApiError
from .journal import JournalEndpoint
from .sandbox import PASSED_THROUGH

# the launcher enforces the timeout; this margin only bounds a launcher that stopped answering
LAUNCHER_GRACE_S = 10.0
PIPE_DRAIN_S = 2.0


@dataclass
class ExecResult:
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: float
    truncated: bool
    timed_out: bool


class _Capture:
    """Reads a pipe to the end on the loop, keeping at most `cap` bytes (the rest is drained so the child never
    blocks); `done` resolves at end of file."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, cap: int):
        self.loop, self.fd, self.cap = loop, fd, cap
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
            os.close(self.fd)
            self.done.set_result(None)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class Executor:
    def __init__(self, launcher_socket: str, max_concurrent: int = 8, output_cap: int = 1024 * 1024,
                 docker_upstream: str | None = None, runtime_dir: str | None = None, filter_uids=None,
                 journal_units=()):
        self.launcher_socket, self.max_concurrent, self.output_cap = launcher_socket, max_concurrent, output_cap
        # commands reach Docker only through a filtered endpoint of their own (docker_filter.py), if at all
        self.docker_upstream, self.runtime_dir, self.filter_uids = docker_upstream, runtime_dir, filter_uids
        self._docker_filter = None
        self.journal_units = tuple(journal_units)
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

    def docker_filter(self):
        if self._docker_filter is None:  # loaded with the first command: an idle agent does not carry it
            from .docker_filter import DockerFilter  # pylint: disable=import-outside-toplevel
            self._docker_filter = DockerFilter(self.docker_upstream)
        return self._docker_filter

    async def run(self, argv: list[str], timeout_s: float, on_docker_decision=None) -> ExecResult:
        endpoint = journal = None
        tag = uuid.uuid4().hex
        try:
            try:
                if self.docker_upstream and self.runtime_dir:
                    path = os.path.join(self.runtime_dir, f"docker-{tag}.sock")
                    endpoint = await self.docker_filter().open(path, on_decision=on_docker_decision,
                                                               allowed_uids=self.filter_uids)
                if self.journal_units and self.runtime_dir:
                    journal = await JournalEndpoint(self.journal_units, self.filter_uids).open(
                        os.path.join(self.runtime_dir, f"journal-{tag}.sock"))
            except OSError as exc:  # e.g. the runtime dir is gone (systemd removes it when the unit stops)
                raise ApiError(503, "sandbox unavailable",
                               f"cannot open the command's Docker and journal sockets in {self.runtime_dir} "
                               f"({exc.strerror or exc}); commands never run unconfined") from None
            return await self._run(argv, timeout_s, endpoint.path if endpoint else None,
                                   journal.path if journal else None)
        finally:
            for opened in (endpoint, journal):
                if opened is not None:
                    await opened.close()

    async def _run(self, argv: list[str], timeout_s: float, docker_socket: str | None,
                   journal_socket: str | None) -> ExecResult:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        out, err = _Capture(loop, out_r, self.output_cap), _Capture(loop, err_r, self.output_cap)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        conn.setblocking(False)
        try:
            request = {"argv": argv, "timeout_s": timeout_s, "docker_socket": docker_socket,
                       "journal_socket": journal_socket,
                       "env": {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}}
            try:
                await loop.sock_connect(conn, self.launcher_socket)
                # one small datagram-sized write with both pipe ends attached; the launcher reads to the newline
                socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [out_w, err_w])
            except OSError as exc:
                raise ApiError(503, "sandbox unavailable",
                               f"the exec sandbox launcher at {self.launcher_socket} does not answer ({exc.strerror or exc}); "
                               "commands never run unconfined") from None
            finally:
                os.close(out_w)
                os.close(err_w)
            reply = await asyncio.wait_for(_read_line(loop, conn), timeout_s + LAUNCHER_GRACE_S)
            # the sandbox is gone, so every writer of the pipes is too: end of file follows at once
            await asyncio.wait([out.done, err.done], timeout=PIPE_DRAIN_S)
        except asyncio.TimeoutError:
            reply = {"exit_code": None, "timed_out": True}
        finally:  # also when the request is cancelled: closing the connection makes the launcher kill the sandbox
            conn.close()
            out.close()
            err.close()
        if "error" in reply:
            raise ApiError(500, "sandbox failed", f"the sandbox refused the command: {reply['error']}")
        return ExecResult(exit_code=reply.get("exit_code"), stdout=out.text(), stderr=err.text(),
                          duration_ms=round((time.monotonic() - started) * 1000, 1),
                          truncated=out.truncated or err.truncated, timed_out=bool(reply.get("timed_out")))


async def _read_line(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = await loop.sock_recv(conn, 4096)
        if not chunk:
            return {"error": "the launcher closed the connection without a result"}
        data += chunk
    return json.loads(data)
