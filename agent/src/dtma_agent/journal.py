"""The journal for executed commands: read by the agent on a command's behalf, for allowed units only.

The sandbox user is deliberately not in `systemd-journal` (the journal holds every service's logs). Inside the
sandbox `journalctl` is a small client (journal_client.py, copied over /usr/bin/journalctl) that sends its arguments
to a per-command endpoint of the agent; the agent checks them against an allowlist (options that only select and
format entries; every `-u` unit in DTMA_JOURNAL_UNITS), runs the real journalctl with `--no-pager` and streams the
output back in frames: b"o"/b"e" + length + bytes for stdout/stderr, b"x" + length + the exit status.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct

DEFAULT_UNITS = ("dtma", "dtma-sandbox", "docker", "containerd", "ssh", "sshd")
SOCKET_IN_SANDBOX = "/run/dtma-journal.sock"
# options that select or format entries; nothing that reads other files, writes, follows or changes the journal
VALUE_FLAGS = {"-u", "--unit", "-n", "--lines", "-S", "--since", "-U", "--until", "-p", "--priority", "-o",
               "--output", "-b", "--boot", "-g", "--grep"}
BOOL_FLAGS = {"--no-pager", "-r", "--reverse", "-q", "--quiet", "-a", "--all", "-x", "--catalog", "--utc",
              "--no-hostname", "-l", "--full", "--no-full", "-e", "--pager-end", "--case-sensitive=false"}
OUTPUTS = {"short", "short-iso", "short-iso-precise", "short-precise", "short-monotonic", "short-unix", "cat",
           "json", "json-pretty", "verbose", "with-unit"}
MAX_RUN_S = 60.0


def frame(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("!I", len(data)) + data


def check_args(args, units) -> str | None:
    """None when journalctl may run with `args`, else the reason."""
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return "arguments must be a list of strings"
    named, i = [], 0
    while i < len(args):
        name, sep, value = args[i].partition("=")
        if name in VALUE_FLAGS:
            if not sep:
                if i + 1 >= len(args):
                    return f"{name} needs a value"
                i, value = i + 1, args[i + 1]
            if name in ("-u", "--unit"):
                named.append(value)
            if name in ("-o", "--output") and value not in OUTPUTS:
                return f"--output {value} is not one of {', '.join(sorted(OUTPUTS))}"
        elif args[i] not in BOOL_FLAGS:
            return f"{args[i]} is not an option executed commands may give journalctl here"
        i += 1
    if not named:
        return "name the unit(s) with -u: executed commands read the journal of " + ", ".join(units)
    outside = [u for u in named if u.removesuffix(".service") not in units]
    if outside:
        return f"the journal of {', '.join(outside)} is not readable for executed commands (allowed: {', '.join(units)})"
    return None


class JournalEndpoint:
    """One command's journal endpoint (a unix socket only the sandbox user may use)."""

    def __init__(self, units, allowed_uids=None):
        self.units, self.allowed_uids = tuple(units), allowed_uids
        self.server: asyncio.AbstractServer | None = None
        self.path = ""

    async def open(self, path: str) -> "JournalEndpoint":
        self.path = path
        self.server = await asyncio.start_unix_server(self._serve, path=path)
        os.chmod(path, 0o666)  # the uid check below decides who may use it
        return self

    async def close(self) -> None:
        if self.server:
            self.server.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
            request = json.loads(await reader.readline())
            refusal = "peer may not use this socket" if self.allowed_uids is not None and uid not in self.allowed_uids \
                else check_args(request.get("args") if isinstance(request, dict) else None, self.units)
            if refusal:
                writer.write(frame(b"e", f"dtma: journalctl: {refusal}\n".encode()) + frame(b"x", b"1"))
            else:
                await self._run(request["args"], writer)
            await writer.drain()
        except (ValueError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _run(args: list, writer: asyncio.StreamWriter) -> None:
        journalctl = shutil.which("journalctl") or "/usr/bin/journalctl"
        proc = await asyncio.create_subprocess_exec(
            journalctl, "--no-pager", *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0"})

        async def pump(stream, kind):
            while chunk := await stream.read(65536):
                writer.write(frame(kind, chunk))
                await writer.drain()

        try:
            await asyncio.wait_for(asyncio.gather(pump(proc.stdout, b"o"), pump(proc.stderr, b"e"), proc.wait()),
                                   MAX_RUN_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        writer.write(frame(b"x", str(proc.returncode).encode()))
