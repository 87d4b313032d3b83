# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection. It is not a public API and may change without notice.
"""The DTMA agent API client: one place builds URLs, one place turns HTTP answers into typed exceptions."""

from __future__ import annotations

import math
import time
import traceback
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

try:
    import requests
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()


class DtmaError(Exception):
    """An answer from the agent that is not a success, or no answer at all."""

    def __init__(self, message, status=None, body=None):
        super(DtmaError, self).__init__(message)
        self.message = message
        self.status = status
        self.body = body if isinstance(body, dict) else {}


class DtmaConnectionError(DtmaError):
    """The agent did not answer (down, wrong URL, TLS failure, timeout)."""


class DtmaUrlError(DtmaError):
    """The url option is not one the client can call (no http:// or https://, no host); nothing was sent."""


class DtmaAuthError(DtmaError):
    """401: the token is missing or wrong."""


class DtmaBlocked(DtmaError):
    """403: the command policy refused the command."""


class DtmaNotFound(DtmaError):
    """404."""


class DtmaConflict(DtmaError):
    """409: a name or port is taken, or the agent's state does not allow the request."""


class DtmaInvalid(DtmaError):
    """400 or 422: the request was refused as invalid; the message names the field."""


class DtmaRateLimited(DtmaError):
    """429: too many restarts or executions; `retry_after` says in how many whole seconds to try again (None when the
    agent did not say)."""

    def __init__(self, message, status=None, body=None, retry_after=None):
        super(DtmaRateLimited, self).__init__(message, status, body)
        self.retry_after = retry_after


class DtmaServerError(DtmaError):
    """5xx: the agent or Docker failed."""


_BY_STATUS = {401: DtmaAuthError, 403: DtmaBlocked, 404: DtmaNotFound, 409: DtmaConflict, 400: DtmaInvalid,
              422: DtmaInvalid, 429: DtmaRateLimited}


def url_problem(url):
    """Why `url` cannot be the agent's base URL (a message naming the option and an example), or None when it can."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "://" not in url:
        example = ("http://" + url + ("" if ":" in url else ":30000")) if url and "/" not in url else "http://203.0.113.10:30000"
        return "the url option (or DTMA_URL) must start with http:// or https://, for example %s; got %r" % (example, url)
    try:
        parts.port  # pylint: disable=pointless-statement  # raises ValueError for a port that is not a number
    except ValueError:
        return "the url option (or DTMA_URL) has a port that is not a number 0-65535; got %r" % url
    if not parts.hostname:
        return "the url option (or DTMA_URL) has no host, for example http://203.0.113.10:30000; got %r" % url
    return None


def parse_retry_after(value, now=None):
    """A Retry-After header as whole seconds from now (RFC 9110: delay-seconds or an HTTP-date), or None when there is
    none or it is neither. The one place it is read: exceptions and modules carry the int."""
    if value is None:
        return None
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0, int(math.ceil((when - (now or datetime.now(timezone.utc))).total_seconds())))


def error_for(status, body, retry_after=None):
    """The typed exception for a non-success answer, with the agent's own explanation; `retry_after` is the answer's
    Retry-After header."""
    body = body if isinstance(body, dict) else {}
    text = body.get("message") or body.get("reason") or body.get("error") or "no explanation in the answer"
    message = "DTMA agent answered HTTP %s: %s" % (status, text)
    if status == 401:
        message += " (check the token option or DTMA_BEARER_TOKEN)"
    if status == 429:
        return DtmaRateLimited(message, status, body, parse_retry_after(retry_after))
    return _BY_STATUS.get(status, DtmaServerError if status >= 500 else DtmaError)(message, status, body)


class DtmaClient(object):
    """requests-based client; GETs (idempotent) are retried on connection errors, nothing else is."""

    GET_RETRIES = 2
    RETRY_DELAY = 0.5

    def __init__(self, url, token, timeout=30, validate_certs=True, ca_path=None):
        problem = url_problem(url)
        if problem:  # requests would only say "No connection adapters were found"
            raise DtmaUrlError(problem)
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = "Bearer %s" % token
        self.session.headers["User-Agent"] = "agentopia.dtma"
        self.session.verify = (ca_path or True) if validate_certs else False

    def url_for(self, *segments):
        return self.base_url + "".join("/" + quote(str(s), safe="") for s in segments)

    def request(self, method, segments, params=None, json=None, timeout=None, ok=(200, 201, 202), retries=None):
        """Call the agent; return (status, body) for a status in `ok`, raise a DtmaError otherwise. A GET is retried
        `retries` times (GET_RETRIES by default) when the agent does not answer; nothing else is retried."""
        url = self.url_for(*segments)
        if retries is None:
            retries = self.GET_RETRIES if method == "GET" else 0
        attempts = 1 + retries
        for attempt in range(attempts):
            try:
                # verify per call: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify
                response = self.session.request(method, url, params=params, json=json,
                                                timeout=timeout or self.timeout, verify=self.session.verify)
                break
            except requests.exceptions.SSLError as exc:
                raise DtmaConnectionError("TLS failure talking to the DTMA agent at %s: %s" % (self.base_url, exc))
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if attempt + 1 < attempts:
                    time.sleep(self.RETRY_DELAY * (attempt + 1))
                    continue
                raise DtmaConnectionError("the DTMA agent at %s did not answer: %s" % (self.base_url, exc.__class__.__name__))
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:500]}
        if response.status_code in ok:
            return response.status_code, body
        raise error_for(response.status_code, body, response.headers.get("Retry-After"))

    def get(self, *segments, **kwargs):
        return self.request("GET", segments, **kwargs)[1]

    def post(self, *segments, **kwargs):
        return self.request("POST", segments, **kwargs)[1]

    def put(self, *segments, **kwargs):
        return self.request("PUT", segments, **kwargs)[1]

    def delete(self, *segments, **kwargs):
        return self.request("DELETE", segments, **kwargs)[1]

    def waiting(self, seconds):
        """The HTTP timeout of a call during which the agent itself waits `seconds` (a graceful stop, a settle window,
        a command): that wait on top of the connection's own timeout."""
        return self.timeout + max(0, seconds or 0)

    # -- the agent's routes, one verb each ---------------------------------------------------------------------------
    # A verb whose call makes the agent wait (a stop grace, a settle window, a command's run time) adds that wait to
    # its own HTTP timeout, so no caller has to remember it.

    def health(self, timeout=None, retries=0):
        """GET /health (no token needed), one attempt by default (a monitor reports what it sees): (HTTP status,
        answer). 503 is an answer too: the agent runs but cannot reach Docker."""
        return self.request("GET", ("health",), ok=(200, 503), timeout=timeout, retries=retries)

    def status(self):
        """GET /status: version, environment, tool instances, system metrics."""
        return self.get("status")

    def diagnostics(self, section, lines=None):
        """GET /diagnostics/<docker|system|logs>: (HTTP status, answer); the docker section answers 503 with what it
        knows when Docker is down."""
        params = {"lines": lines} if lines is not None else None
        return self.request("GET", ("diagnostics", section), params=params, ok=(200, 503) if section == "docker" else (200,))

    def audit(self, verdicts, limit):
        """GET /diagnostics/audit: the newest audit entries of the agent process with these verdicts, newest first."""
        return self.get("diagnostics", "audit", params={"verdict": list(verdicts), "limit": limit})

    # MCP servers and groups

    def mcp_status(self, probe=False):
        """GET /mcp/status: the answer (mcp_servers, count); with `probe`, each HTTP server is spoken MCP to."""
        return self.get("mcp", "status", params={"probe": "true"} if probe else None)

    def mcp_servers(self, group=None):
        """Every managed MCP server as GET /mcp/status lists it (no probe), or only those of `group`."""
        servers = self.mcp_status().get("mcp_servers") or []
        return [s for s in servers if group is None or s.get("group_id") == group]

    def validate_group(self, payload):
        """POST /mcp/validate: the agent's plan for the group (one entry per server); deploys nothing."""
        return self.post("mcp", "validate", json=payload)["data"]["plan"]

    def deploy_group(self, payload, wait_s):
        """POST /mcp/groups: converge the group; the agent answers once every server is ready, within `wait_s`."""
        return self.post("mcp", "groups", json=payload, ok=(201,), timeout=self.waiting(wait_s))

    def remove_group(self, group, force, grace):
        """DELETE /mcp/groups/<group>: stop (within `grace` seconds, unless `force`) and remove every container."""
        params = {"forceRemove": "true" if force else "false", "gracefulTimeoutMs": grace * 1000}
        return self.delete("mcp", "groups", group, params=params, timeout=self.waiting(grace))

    def group_health(self, group, retry_for=0.0):
        """GET /mcp/health/<group>: each server's container state and MCP probe; the agent retries refused
        connections for `retry_for` seconds."""
        return self.get("mcp", "health", group, params={"retryFor": round(retry_for, 1)},
                        timeout=self.waiting(retry_for + 10))

    def server_action(self, name, action, grace):
        """POST /mcp/servers/<name>/<start|stop|restart>; `grace` seconds to stop before a kill."""
        return self.post("mcp", "servers", name, action, params={"timeout": grace}, timeout=self.waiting(grace))

    def start_server(self, name, grace=0):
        return self.server_action(name, "start", grace)

    def stop_server(self, name, grace):
        return self.server_action(name, "stop", grace)

    def restart_server(self, name, grace):
        """Restart one MCP server (within the agent's restart limit: a DtmaRateLimited with retry_after beyond it)."""
        return self.server_action(name, "restart", grace)

    # tools

    def tools(self):
        """Every managed tool instance (GET /tools/status)."""
        return self.get("tools", "status").get("data") or []

    def validate_tool(self, body):
        """POST /tools/validate: what PUT /tools/<name> would do with this body; changes nothing."""
        return self.post("tools", "validate", json=body)["data"]["plan"]

    def converge_tool(self, name, body, wait_s, start=True):
        """PUT /tools/<name>: apply the plan; the agent answers once the tool is ready, within `wait_s`. With
        start=False a stopped tool is left stopped (the plan's start step is not taken)."""
        params = None if start else {"start": "false"}
        return self.put("tools", name, json=body, params=params, ok=(200, 201), timeout=self.waiting(wait_s))

    def tool_action(self, name, action, grace):
        """POST /tools/<name>/<start|stop|restart>; `grace` seconds to stop before a kill."""
        params = {"timeout": grace} if action != "start" else None
        return self.post("tools", name, action, params=params, timeout=self.waiting(grace))

    def remove_tool(self, name, grace):
        """DELETE /tools/<name>: stop within `grace` seconds and remove."""
        return self.delete("tools", name, params={"timeout": grace}, timeout=self.waiting(grace))

    # commands

    def execute(self, request, run_s):
        """POST /ssh/execute: run the command (the answer comes after it, so its run time is added to the timeout)."""
        return self.post("ssh", "execute", json=request, timeout=self.waiting(run_s))

    def dry_run(self, request):
        """POST /ssh/execute with dry_run: the policy's verdict; nothing runs."""
        return self.post("ssh", "execute", json=dict(request, dry_run=True))

    # the agent itself

    def restart_agent(self):
        """POST /restart: the agent exits and its service manager starts it again. (HTTP status, answer)."""
        return self.request("POST", ("restart",))

    def redeploy(self, version):
        """POST /redeploy: switch to the installed release `version` (or `previous`) and restart. (HTTP status, answer)."""
        return self.request("POST", ("redeploy",), json={"version": version})
