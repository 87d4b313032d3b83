"""The filtered Docker API an executed command sees (mounted at /run/docker.sock inside its sandbox).

The agent opens one endpoint per command: a unix socket served here, in front of the real Docker socket.
It answers only what policy/docker_access.py (plugins/module_utils/_docker_access.py) allows: reads, with
secrets redacted from inspect documents, and start/stop/restart of the agent's own containers. Everything
else gets 403 and {"message": reason}, Docker's error shape, so the docker CLI prints the reason.

HTTP is parsed and written with h11 on both sides, over asyncio unix streams: no thread per connection,
nothing blocking on the event loop. Every decision goes to the caller's on_decision(dict), without bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import struct
from urllib.parse import parse_qs, quote, unquote

import h11

from .policy.docker_access import MANAGED_LABEL, MANAGED_LIFECYCLE, api_operation, redact, top_args_refusal

log = logging.getLogger(__name__)

_VERSION = re.compile(r"/v[0-9]+(?:\.[0-9]+)?(?=/)")
# ids, names and image references need no more; anything a router could read differently is refused
_PATH_CHARS = re.compile(r"[A-Za-z0-9._:@/+-]+")
# connection-level headers: each side of the proxy frames its own messages
_HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te",
                         b"trailer", b"upgrade", b"host", b"content-length", b"expect"))
_HEAD_LIMIT = 64 * 1024             # request line and headers
_DOCUMENT_LIMIT = 16 * 1024 * 1024  # an inspect document, redacted in memory
_READ_SIZE = 65536
_LINGER_SECONDS, _LINGER_BYTES = 1.0, 1024 * 1024  # after refusing a request whose body is still coming


class _Refusal(Exception):
    """An answer other than forwarding: status, the reason audited, the message the client reads."""

    def __init__(self, status: int, reason: str, *, close: bool = False, message: str | None = None):
        super().__init__(reason)
        self.status, self.reason, self.close = status, reason, close
        self.message = message if message is not None else f"dtma: {reason}"


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader):
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(_READ_SIZE))


def _normalize(target: bytes) -> tuple[str, str, str]:
    """Split a request target into (version prefix, decoded path, "?query"); refuse anything odd."""
    raw, sep, query = target.partition(b"?")
    if not raw.startswith(b"/"):
        raise _Refusal(400, "the request target must be a path", close=True)
    try:
        path = unquote(raw.decode("ascii"), errors="strict")
        query_text = (b"?" + query).decode("ascii") if sep else ""
    except UnicodeError:
        raise _Refusal(400, "the request target is not ASCII or its escapes are not UTF-8", close=True) from None
    segments = path.split("/")[1:]
    if not _PATH_CHARS.fullmatch(path) or any(s in ("", ".", "..") for s in segments):
        raise _Refusal(400, f"odd request path {path[:200]!r}: empty, '.' or '..' segments or unusual characters",
                       close=True)
    version = _VERSION.match(path)
    prefix = version.group(0) if version else ""
    return prefix, path[len(prefix):], query_text


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    try:
        sock = writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", creds)[1]


class _Upstream:
    """One keep-alive HTTP connection to the real Docker socket, opened on first use."""

    def __init__(self, path: str):
        self.path = path
        self.conn: h11.Connection | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: bytes, target: bytes, headers: list, body: bytes = b"") -> h11.Response:
        """Send a request and return the response head; its body follows from next_event()."""
        if self.conn is not None:
            try:
                return await self._exchange(method, target, headers, body)
            except (OSError, h11.ProtocolError):
                self.close()  # Docker closed an idle keep-alive connection: one retry on a new one
        try:
            self.reader, self.writer = await asyncio.open_unix_connection(self.path)
        except OSError as exc:
            raise _Refusal(502, f"the Docker engine is not reachable at {self.path}: {exc.strerror or exc}",
                           close=True) from None
        self.conn = h11.Connection(h11.CLIENT)
        try:
            return await self._exchange(method, target, headers, body)
        except (OSError, h11.ProtocolError) as exc:
            self.close()
            raise _Refusal(502, f"the Docker engine did not answer: {exc or type(exc).__name__}", close=True) from None

    async def _exchange(self, method, target, headers, body) -> h11.Response:
        data = self.conn.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            data += self.conn.send(h11.Data(data=body))
        self.writer.write(data + self.conn.send(h11.EndOfMessage()))
        await self.writer.drain()
        event = await self.next_event()
        while isinstance(event, h11.InformationalResponse):
            event = await self.next_event()
        if not isinstance(event, h11.Response):
            raise ConnectionError("closed before answering")
        return event

    async def next_event(self):
        return await _next_event(self.conn, self.reader)

    async def read_body(self, limit: int) -> bytes:
        chunks, size = [], 0
        while isinstance(event := await self.next_event(), h11.Data):
            size += len(event.data)
            if size > limit:
                self.close()
                raise _Refusal(502, f"the Docker engine's answer exceeds {limit} bytes", close=True)
            chunks.append(event.data)
        if not isinstance(event, h11.EndOfMessage):
            raise _Refusal(502, "the Docker engine closed the connection mid-answer", close=True)
        return b"".join(chunks)

    def done(self) -> None:
        """Keep the connection for the next request if the exchange ended cleanly."""
        if self.conn is not None and self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        else:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.conn = self.reader = self.writer = None


class _Connection:
    """One client connection: a sequence of keep-alive requests, each judged, then forwarded or refused."""

    def __init__(self, flt: "DockerFilter", reader, writer, on_decision, allowed_uids):
        self.reader, self.writer = reader, writer
        self.upstream = _Upstream(flt.upstream)
        self.body_limit = flt.body_limit
        self.on_decision, self.allowed_uids = on_decision, allowed_uids
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_HEAD_LIMIT)
        self.uid = _peer_uid(writer)
        self.method = b""

    async def run(self) -> None:
        try:
            while True:
                self.method = b""
                try:
                    request = await _next_event(self.conn, self.reader)
                    if not isinstance(request, h11.Request):
                        return  # the client closed the connection
                    self.method = request.method
                    if not await self._handle(request):
                        return
                except h11.RemoteProtocolError as exc:
                    if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        await self._refuse(None, None, _Refusal(exc.error_status_hint, f"malformed request: {exc}",
                                                                close=True))
                    return
                if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                    return
                self.conn.start_next_cycle()
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception:  # pylint: disable=broad-except  # never a traceback to the client; the log has it
            log.exception("docker filter: unexpected error")
        finally:
            self.upstream.close()
            self.writer.close()

    async def _handle(self, request: h11.Request) -> bool:
        """Answer one request; False when the connection must close."""
        method = request.method.decode("ascii", "replace")
        shown = request.target.partition(b"?")[0][:200].decode("ascii", "replace")
        headers = dict(request.headers)
        connection = b",".join(v for n, v in request.headers if n == b"connection").lower()
        try:
            if self.allowed_uids is not None and self.uid not in self.allowed_uids:
                raise _Refusal(403, f"peer uid {self.uid} may not use this socket", close=True)
            if b"transfer-encoding" in headers and b"content-length" in headers:
                raise _Refusal(400, "both Content-Length and Transfer-Encoding: ambiguous framing", close=True)
            prefix, path, query = _normalize(request.target)
            shown = path
            kind, redaction, container, reason = api_operation(method, path)
            if kind is None:
                raise _Refusal(403, reason)
            if path.endswith("/top"):
                refusal = top_args_refusal(" ".join(parse_qs(query[1:]).get("ps_args", [""])))
                if refusal:
                    raise _Refusal(403, refusal)
            if b"upgrade" in headers or b"upgrade" in connection:
                raise _Refusal(403, "connection upgrades (hijacking) are not allowed for executed commands")
            body = await self._read_body(headers)
            if kind == MANAGED_LIFECYCLE:
                container_id = await self._managed(container, path.rsplit("/", 1)[1])
                path = f"/containers/{container_id}/{path.rsplit('/', 1)[1]}"
        except _Refusal as refusal:
            return await self._refuse(method, shown, refusal)
        self._decide(True, None, method, path, reason, kind)
        return await self._forward(request, (prefix + path + query).encode("ascii"), body, redaction)

    async def _read_body(self, headers: dict) -> bytes:
        if int(headers.get(b"content-length", 0)) > self.body_limit:
            raise _Refusal(413, f"request bodies are limited to {self.body_limit} bytes", close=True)
        chunks, size = [], 0
        while isinstance(event := await _next_event(self.conn, self.reader), h11.Data):
            size += len(event.data)
            if size > self.body_limit:
                raise _Refusal(413, f"request bodies are limited to {self.body_limit} bytes", close=True)
            chunks.append(event.data)
        return b"".join(chunks)

    async def _managed(self, container: str, verb: str) -> str:
        """The id of the container a lifecycle call names, if the agent manages it (else a refusal)."""
        response = await self.upstream.request(b"GET", f"/containers/{quote(container, safe='')}/json".encode(),
                                               [(b"host", b"docker")])
        body = await self.upstream.read_body(_DOCUMENT_LIMIT)
        self.upstream.done()
        try:
            details = json.loads(body)
        except ValueError:
            details = {}
        if response.status_code != 200:  # e.g. 404 "No such container": Docker's own answer
            message = details.get("message", f"Docker answered {response.status_code}")
            raise _Refusal(response.status_code, message, message=message)
        labels = (details.get("Config") or {}).get("Labels") or {}
        if labels.get(MANAGED_LABEL[0]) != MANAGED_LABEL[1]:
            name = details.get("Name", container).lstrip("/")
            raise _Refusal(403, f"docker {verb} is not allowed for executed commands: container {name} is not "
                                f"managed by the agent (no label {MANAGED_LABEL[0]}={MANAGED_LABEL[1]})")
        return details["Id"]

    async def _forward(self, request: h11.Request, target: bytes, body: bytes, redaction: str | None) -> bool:
        headers = [(n, v) for n, v in request.headers if n not in _HOP_BY_HOP] + [(b"host", b"docker")]
        if body or request.method not in (b"GET", b"HEAD"):
            headers.append((b"content-length", str(len(body)).encode()))
        try:
            response = await self.upstream.request(request.method, target, headers, body)
            out = [(n, v) for n, v in response.headers if n not in _HOP_BY_HOP or n == b"content-length"]
            if redaction and response.status_code == 200:
                document = json.loads(await self.upstream.read_body(_DOCUMENT_LIMIT))
                data = json.dumps(redact(redaction, document), separators=(",", ":")).encode() + b"\n"
                out = [(n, v) for n, v in out if n != b"content-length"] + [(b"content-length", b"%d" % len(data))]
                self._write(h11.Response(status_code=200, headers=out, reason=response.reason), h11.Data(data=data),
                            h11.EndOfMessage())
                await self.writer.drain()
                self.upstream.done()
                return True
        except _Refusal as refusal:
            return await self._send_error(refusal.status, refusal.message, keep=False)
        except ValueError:
            self.upstream.close()
            return await self._send_error(502, "dtma: the Docker engine answered an inspect with invalid JSON", False)
        self._write(h11.Response(status_code=response.status_code, headers=out, reason=response.reason))
        if any(name == b"content-length" for name, _value in out):
            await self._pump()
        elif not await self._stream():
            return False
        self.upstream.done()
        return True

    async def _pump(self) -> None:
        """Copy the upstream body to the client, at the client's pace."""
        while isinstance(event := await self.upstream.next_event(), h11.Data):
            self._write(h11.Data(data=event.data))
            await self.writer.drain()
        if not isinstance(event, h11.EndOfMessage):
            raise ConnectionError("the Docker engine closed the connection mid-answer")
        self._write(h11.EndOfMessage())
        await self.writer.drain()

    async def _stream(self) -> bool:
        """Pump an open-ended body (logs -f, stats, events) until it ends or the client goes away."""
        pump = asyncio.ensure_future(self._pump())
        gone = asyncio.ensure_future(self._client_gone())
        try:
            await asyncio.wait((pump, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            pump.cancel()
            gone.cancel()
            await asyncio.wait((pump, gone))  # the cancelled read must let go of the stream before the next one
        if not pump.done() or pump.cancelled():
            return False
        pump.result()
        return True

    async def _client_gone(self) -> None:
        while data := await self.reader.read(_READ_SIZE):
            self.conn.receive_data(data)  # a pipelined request waits in h11's buffer

    async def _refuse(self, method: str | None, path: str | None, refusal: _Refusal) -> bool:
        self._decide(False, refusal.status, method, path, refusal.reason)
        keep = not refusal.close and await self._drain()
        return await self._send_error(refusal.status, refusal.message, keep)

    async def _drain(self) -> bool:
        """Discard a small request body so the connection can serve the next request."""
        size = 0
        while self.conn.their_state is h11.SEND_BODY:
            event = await _next_event(self.conn, self.reader)
            size += len(event.data) if isinstance(event, h11.Data) else 0
            if size > self.body_limit:
                return False
        return True

    async def _send_error(self, status: int, message: str, keep: bool) -> bool:
        data = json.dumps({"message": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
        if not keep:
            headers.append((b"connection", b"close"))
        self._write(h11.Response(status_code=status, headers=headers))
        if self.method != b"HEAD":
            self._write(h11.Data(data=data))
        self._write(h11.EndOfMessage())
        await self.writer.drain()
        if not keep and self.conn.their_state is not h11.DONE:
            await self._linger()
        return keep

    async def _linger(self) -> None:
        """Before closing, read (and drop) what the client is still sending, for a moment: closing a unix socket
        with unread data resets the peer, which may then never read our answer."""
        self.writer.write_eof()
        try:
            await asyncio.wait_for(self._discard(_LINGER_BYTES), _LINGER_SECONDS)
        except (asyncio.TimeoutError, OSError):
            pass

    async def _discard(self, limit: int) -> None:
        while limit > 0 and (data := await self.reader.read(_READ_SIZE)):
            limit -= len(data)

    def _write(self, *events) -> None:
        self.writer.write(b"".join(self.conn.send(event) for event in events))

    def _decide(self, allowed, status, method, path, reason, kind=None) -> None:
        if self.on_decision is not None:
            self.on_decision({"allowed": allowed, "status": status, "method": method, "path": path, "kind": kind,
                              "reason": reason, "uid": self.uid})


class FilterEndpoint:
    """One served socket; close() stops it and ends its live connections."""

    def __init__(self, path: str, server: asyncio.AbstractServer, tasks: set):
        self.path = path
        self._server, self._tasks = server, tasks
        self._inode = os.stat(path).st_ino

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        try:
            if os.stat(self.path).st_ino == self._inode:  # never remove a socket someone else put there since
                os.unlink(self.path)
        except FileNotFoundError:
            pass


class DockerFilter:
    """Serves filtered views of the Docker socket `upstream`, one endpoint per executed command."""

    def __init__(self, upstream: str = "/var/run/docker.sock", *, body_limit: int = 65536):
        self.upstream = upstream
        self.body_limit = body_limit

    async def open(self, path: str, *, on_decision=None, allowed_uids=None, mode: int = 0o666) -> FilterEndpoint:
        """Serve the filtered API on a new unix socket at `path` (removed on close).

        on_decision(dict) is called on the event loop for every request, before it is forwarded: allowed, status
        (None when forwarded), method, path (normalized), kind, reason, uid of the peer. If it raises, the request
        is not forwarded and the connection closes. allowed_uids: if given, other peers get 403.
        """
        tasks: set = set()
        uids = None if allowed_uids is None else frozenset(allowed_uids)

        async def serve(reader, writer):
            task = asyncio.current_task()
            tasks.add(task)
            try:
                await _Connection(self, reader, writer, on_decision, uids).run()
            except asyncio.CancelledError:
                pass  # the endpoint closed (asyncio would report a cancelled connection task as an error)
            finally:
                tasks.discard(task)

        server = await asyncio.start_unix_server(serve, path=path)
        os.chmod(path, mode)
        return FilterEndpoint(path, server, tasks)
