"""Docker's reachability, watched in the background: GET /health answers from memory instead of pinging Docker on
every request (a ping was 85 % of its cost). One ping a second at most, on the event loop; a state older than
MAX_AGE_S (a ping that hangs) is not reported as reachable."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

INTERVAL_S = 1.0  # one ping per second: an outage or a recovery shows within about a second
TIMEOUT_S = 0.9   # a ping that takes longer counts as a failure, so the next one still starts on time
MAX_AGE_S = 2.0   # /health never reports a state older than this as reachable


class DockerWatch:
    """Pings the engine's `/_ping` once a second: over the local socket with a one-line HTTP request on the event
    loop (no thread, no connection pool, and a hung engine costs a timeout, not a worker), or through
    `fallback_ping` (the SDK, in a thread) when the engine is not on a local socket (tcp://, TLS, ssh://)."""

    def __init__(self, socket_path: str | None, fallback_ping: Callable[[], bool]):
        self._socket_path = socket_path
        self._fallback_ping = fallback_ping
        self._task: asyncio.Task | None = None
        self.ok = False
        self.error: str | None = "not checked yet"
        self.checked_at: float | None = None  # time.monotonic() of the last answer (or failure)

    async def _ping_socket(self) -> None:
        reader, writer = await asyncio.open_unix_connection(self._socket_path)
        try:
            writer.write(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            status_line = await reader.readline()
        finally:
            writer.close()
        if status_line.split(b" ", 2)[1:2] != [b"200"]:
            raise ConnectionError(f"/_ping answered {status_line.decode('latin-1').strip() or 'nothing'}")

    async def check(self) -> bool:
        """One ping, recorded; what it found."""
        try:
            if self._socket_path:
                await asyncio.wait_for(self._ping_socket(), TIMEOUT_S)
            elif not await asyncio.wait_for(asyncio.to_thread(self._fallback_ping), TIMEOUT_S):
                raise ConnectionError("ping failed")
            self.ok, self.error = True, None
        except asyncio.TimeoutError:
            self.ok, self.error = False, f"no answer to a ping within {TIMEOUT_S} s"
        except (OSError, ValueError) as exc:  # refused, reset, a missing socket, a garbled answer
            self.ok, self.error = False, f"{exc.__class__.__name__}: {exc}"
        self.checked_at = time.monotonic()
        return self.ok

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await self.check()
            await asyncio.sleep(max(0.0, INTERVAL_S - (time.monotonic() - started)))

    async def start(self) -> None:
        """The first check before the agent serves, so its first /health already knows; then one a second."""
        await self.check()
        self._task = asyncio.create_task(self._run(), name="dtma-docker-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def state(self) -> tuple[bool, int | None, str | None]:
        """Reachable?, the age of that finding in ms, and why not."""
        if self.checked_at is None:
            return False, None, self.error
        age_s = time.monotonic() - self.checked_at
        if self.ok and age_s > MAX_AGE_S:
            return False, round(age_s * 1000), f"no ping has answered for {age_s:.1f} s"
        return self.ok, round(age_s * 1000), self.error
