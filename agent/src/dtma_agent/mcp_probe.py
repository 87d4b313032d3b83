"""Speak MCP to a server: JSON-RPC initialize, then tools/list, over streamable HTTP or SSE."""

from __future__ import annotations

import json
import time
from urllib.parse import urljoin


from . import __version__, prometheus
from .sdk import requests

PROTOCOL_VERSION = "2025-06-18"
CLIENT_INFO = {"name": "dtma-probe", "version": __version__}
HTTP_TRANSPORTS = ("streamable-http", "sse")


class ProbeError(Exception):
    pass


def _initialize(request_id: int = 1) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize",
            "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO}}


def _sse_messages(lines):
    """Yield the JSON payload of each SSE event from an iterator of decoded lines."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield event, "\n".join(data)


def _rpc_result(response: requests.Response, request_id: int) -> dict:
    """The JSON-RPC result for request_id from a JSON or an SSE response body."""
    if response.status_code != 200:
        raise ProbeError(f"HTTP {response.status_code} from the MCP endpoint")
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        payloads = [json.loads(d) for ev, d in _sse_messages(response.text.splitlines()) if ev == "message"]
    else:
        body = response.json()
        payloads = body if isinstance(body, list) else [body]
    for msg in payloads:
        if msg.get("id") == request_id:
            if "error" in msg:
                raise ProbeError(f"JSON-RPC error: {msg['error'].get('message', msg['error'])}")
            return msg.get("result") or {}
    raise ProbeError(f"no JSON-RPC answer to request {request_id}")


def _streamable_http(session: requests.Session, url: str, timeout: float) -> tuple[dict, dict]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = session.post(url, json=_initialize(), headers=headers, timeout=timeout)
    result = _rpc_result(init, 1)
    if init.headers.get("mcp-session-id"):
        headers["Mcp-Session-Id"] = init.headers["mcp-session-id"]
    headers["MCP-Protocol-Version"] = result.get("protocolVersion", PROTOCOL_VERSION)
    session.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers, timeout=timeout)
    tools = _rpc_result(session.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                                     headers=headers, timeout=timeout), 2)
    if "Mcp-Session-Id" in headers:
        try:
            session.delete(url, headers=headers, timeout=timeout)
        except requests.RequestException:
            pass  # ending the session is a courtesy; the probe already has its answer
    return result, tools


def _sse(session: requests.Session, url: str, timeout: float) -> tuple[dict, dict]:
    with session.get(url, headers={"Accept": "text/event-stream"}, stream=True, timeout=timeout) as stream:
        if stream.status_code != 200:
            raise ProbeError(f"HTTP {stream.status_code} from the SSE endpoint")
        events = _sse_messages(stream.iter_lines(decode_unicode=True))
        kind, endpoint = next(events, (None, None))
        if kind != "endpoint" or not endpoint:
            raise ProbeError("the SSE stream did not announce a message endpoint")
        post_url = urljoin(url, endpoint)

        def call(message: dict) -> dict:
            session.post(post_url, json=message, timeout=timeout).raise_for_status()
            for ev, data in events:
                if ev == "message":
                    reply = json.loads(data)
                    if reply.get("id") == message["id"]:
                        if "error" in reply:
                            raise ProbeError(f"JSON-RPC error: {reply['error'].get('message')}")
                        return reply.get("result") or {}
            raise ProbeError("the SSE stream ended before the answer")

        result = call(_initialize())
        session.post(post_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, timeout=timeout)
        tools = call({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    return result, tools


def probe(url: str, transport: str, timeout: float = 3.0, retry_for: float = 0.0, server: str | None = None) -> dict:
    """Probe one MCP endpoint. Connection refusals are retried for `retry_for` seconds (a server still starting).
    A probe of a named `server` that spoke to it is recorded for /metrics."""
    started = time.monotonic()
    result = _probe(url, transport, timeout, retry_for)
    if server is not None and result["ok"] is not None:
        # the attempt that answered; a connection that never came took the whole retry window
        seconds = result["latency_ms"] / 1000 if "latency_ms" in result else time.monotonic() - started
        prometheus.observe_probe(server, result["ok"], seconds)
    return result


def _probe(url: str, transport: str, timeout: float, retry_for: float) -> dict:
    if transport not in HTTP_TRANSPORTS:
        return {"ok": None, "url": url, "reason": f"{transport} servers are not probed over the network; health is the container state"}
    deadline = time.monotonic() + retry_for
    while True:
        started = time.monotonic()
        try:
            with requests.Session() as session:
                session.trust_env = False  # probes go straight to the container, never through a proxy
                init, tools = (_streamable_http if transport == "streamable-http" else _sse)(session, url, timeout)
            info = init.get("serverInfo") or {}
            return {"ok": True, "url": url, "latency_ms": round((time.monotonic() - started) * 1000, 1),
                    "server_name": info.get("name"), "server_version": info.get("version"),
                    "protocol_version": init.get("protocolVersion"), "tool_count": len(tools.get("tools") or []),
                    "tools": [t.get("name") for t in tools.get("tools") or []]}
        except requests.ConnectionError as exc:
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            return {"ok": False, "url": url, "error": f"connection failed: {exc.__class__.__name__}"}
        except (requests.RequestException, ProbeError, ValueError) as exc:
            return {"ok": False, "url": url, "error": str(exc) or exc.__class__.__name__,
                    "latency_ms": round((time.monotonic() - started) * 1000, 1)}
