# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the agent API client: URL building, answers, typed errors and retries (HTTP is faked)."""

from __future__ import annotations

import pytest
import requests

from ansible_collections.agentopia.dtma.plugins.module_utils import _api
from ansible_collections.agentopia.dtma.plugins.module_utils._api import (
    DtmaAuthError,
    DtmaBlocked,
    DtmaClient,
    DtmaConflict,
    DtmaConnectionError,
    DtmaError,
    DtmaInvalid,
    DtmaNotFound,
    DtmaRateLimited,
    DtmaServerError,
    DtmaUrlError,
    error_for,
)

TOKEN = "unit-test-token-0123456789abcdef"


class FakeResponse(object):
    def __init__(self, status, body=None, text=None, headers=None):
        self.status_code = status
        self._body = body
        self.text = text if text is not None else ""
        self.headers = headers or {}

    def json(self):
        if self._body is None:
            raise ValueError("no JSON")
        return self._body


class FakeSession(object):
    """Stands in for requests.Session: answers from a script of responses or exceptions, records every call."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []
        self.headers = {}
        self.verify = True

    def request(self, method, url, params=None, json=None, timeout=None, verify=None):
        self.calls.append(dict(method=method, url=url, params=params, json=json, timeout=timeout, verify=verify))
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(_api.time, "sleep", slept.append)
    return slept


def client_with(script, **kwargs):
    client = DtmaClient("http://agent.example:30000/", TOKEN, **kwargs)
    fake = FakeSession(script)
    fake.headers.update(client.session.headers)
    fake.verify = client.session.verify
    client.session = fake
    return client, fake


# --- construction and URLs ---------------------------------------------------------------------------------

def test_session_carries_the_token_and_a_user_agent():
    client = DtmaClient("http://agent.example:30000", TOKEN)
    assert client.session.headers["Authorization"] == "Bearer " + TOKEN
    assert client.session.headers["User-Agent"] == "agentopia.dtma"
    assert client.timeout == 30


@pytest.mark.parametrize("validate_certs, ca_path, verify", [
    (True, None, True),
    (True, "/etc/ssl/agent-ca.pem", "/etc/ssl/agent-ca.pem"),
    (False, None, False),
    (False, "/etc/ssl/agent-ca.pem", False),
])
def test_certificate_verification(validate_certs, ca_path, verify):
    client = DtmaClient("https://agent.example:30000", TOKEN, validate_certs=validate_certs, ca_path=ca_path)
    assert client.session.verify == verify


@pytest.mark.parametrize("validate_certs, ca_path, verify", [
    (False, None, False),
    (True, "/etc/ssl/agent-ca.pem", "/etc/ssl/agent-ca.pem"),
])
def test_ca_bundle_environment_does_not_override_the_options(monkeypatch, validate_certs, ca_path, verify):
    """A real Session down to the transport adapter: what reaches the TLS layer is what the options said."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/env-bundle.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/env-bundle.pem")
    seen = []

    def send(adapter, request, **kwargs):
        seen.append(kwargs["verify"])
        response = requests.Response()
        response.status_code, response._content, response.request = 200, b"{}", request
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    DtmaClient("https://agent.example:30000", TOKEN, validate_certs=validate_certs, ca_path=ca_path).get("health")
    assert seen == [verify]


def test_url_for_strips_the_trailing_slash_and_quotes_each_segment():
    client = DtmaClient("http://agent.example:30000///", TOKEN)
    assert client.url_for() == "http://agent.example:30000"
    assert client.url_for("tools", "status") == "http://agent.example:30000/tools/status"
    # a segment can never add a path level or a query
    assert client.url_for("tools", "a/b", "start") == "http://agent.example:30000/tools/a%2Fb/start"
    assert client.url_for("mcp", "groups", "../x?y=1#z") == "http://agent.example:30000/mcp/groups/..%2Fx%3Fy%3D1%23z"
    assert client.url_for("tools", "na me", "é") == "http://agent.example:30000/tools/na%20me/%C3%A9"
    assert client.url_for("tools", 42) == "http://agent.example:30000/tools/42"


@pytest.mark.parametrize("url, example", [
    ("127.0.0.1:30000", "http://127.0.0.1:30000"),
    ("localhost:30000", "http://localhost:30000"),
    ("droplet-1", "http://droplet-1:30000"),
    ("ftp://agent.example:30000", "http://203.0.113.10:30000"),
    ("//agent.example:30000", "http://203.0.113.10:30000"),
    ("", "http://203.0.113.10:30000"),
])
def test_a_url_without_http_or_https_is_refused_naming_the_option_and_an_example(url, example):
    with pytest.raises(DtmaUrlError) as info:
        DtmaClient(url, TOKEN)
    message = info.value.message
    assert "url option (or DTMA_URL)" in message and "http:// or https://" in message
    assert "for example %s;" % example in message and repr(url) in message
    assert info.value.status is None and not isinstance(info.value, DtmaConnectionError)


@pytest.mark.parametrize("url, problem", [
    ("http://", "has no host"),
    ("http://:30000", "has no host"),
    ("http://agent.example:port", "port that is not a number"),
    ("http://agent.example:99999", "port that is not a number"),
])
def test_a_url_without_a_host_or_with_a_bad_port_is_refused(url, problem):
    with pytest.raises(DtmaUrlError, match=problem):
        DtmaClient(url, TOKEN)


@pytest.mark.parametrize("url", ["http://agent.example:30000", "https://agent.example", "HTTP://agent.example:1",
                                 "http://[::1]:30000/", "https://10.0.0.5:30000/prefix"])
def test_http_and_https_urls_are_accepted(url):
    assert _api.url_problem(url) is None
    assert DtmaClient(url, TOKEN).base_url == url.rstrip("/")


# --- answers -----------------------------------------------------------------------------------------------

def test_request_returns_status_and_body_and_passes_params_json_timeout():
    client, fake = client_with([FakeResponse(201, {"success": True, "data": {"x": 1}})], timeout=7)
    status, body = client.request("POST", ("tools",), params={"a": 1}, json={"b": 2})
    assert (status, body) == (201, {"success": True, "data": {"x": 1}})
    assert fake.calls == [dict(method="POST", url="http://agent.example:30000/tools", params={"a": 1}, json={"b": 2},
                               timeout=7, verify=True)]


def test_per_call_timeout_wins():
    client, fake = client_with([FakeResponse(200, {})])
    client.get("health", timeout=2)
    assert fake.calls[0]["timeout"] == 2


def test_get_post_delete_return_the_body():
    client, fake = client_with([FakeResponse(200, {"a": 1}), FakeResponse(202, {"b": 2}), FakeResponse(200, {"c": 3})])
    assert client.get("status") == {"a": 1}
    assert client.post("restart") == {"b": 2}
    assert client.delete("tools", "t1", params={"timeout": 0}) == {"c": 3}
    assert [c["method"] for c in fake.calls] == ["GET", "POST", "DELETE"]
    assert fake.calls[2]["params"] == {"timeout": 0}


def test_ok_decides_which_statuses_are_answers():
    client, _fake = client_with([FakeResponse(503, {"status": "degraded", "docker": False})])
    assert client.request("GET", ("health",), ok=(200, 503)) == (503, {"status": "degraded", "docker": False})
    client, _fake = client_with([FakeResponse(201, {})])
    with pytest.raises(DtmaError) as info:
        client.request("POST", ("tools",), ok=(200,))
    assert info.value.status == 201


def test_a_body_that_is_not_json_becomes_a_message():
    client, _fake = client_with([FakeResponse(200, None, text="plain text")])
    assert client.get("x") == {"message": "plain text"}
    client, _fake = client_with([FakeResponse(502, None, text="<html>" + "x" * 2000)])
    with pytest.raises(DtmaServerError) as info:
        client.get("x")
    assert info.value.body["message"] == ("<html>" + "x" * 2000)[:500]
    assert "HTTP 502" in info.value.message


# --- typed errors --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, kind", [
    (400, DtmaInvalid), (401, DtmaAuthError), (403, DtmaBlocked), (404, DtmaNotFound), (409, DtmaConflict),
    (422, DtmaInvalid), (429, DtmaRateLimited), (500, DtmaServerError), (502, DtmaServerError),
    (503, DtmaServerError), (418, DtmaError),
])
def test_each_status_has_its_exception(status, kind):
    body = {"success": False, "error": "e", "message": "what went wrong"}
    client, _fake = client_with([FakeResponse(status, body)])
    with pytest.raises(kind) as info:
        client.post("tools", json={})
    exc = info.value
    assert type(exc) is kind  # pylint: disable=unidiomatic-typecheck
    assert isinstance(exc, DtmaError)
    assert exc.status == status and exc.body == body
    assert exc.message == str(exc)
    assert exc.message.startswith("DTMA agent answered HTTP %s: what went wrong" % status)


def test_401_says_to_check_the_token_and_never_contains_it():
    client, _fake = client_with([FakeResponse(401, {"error": "invalid token", "message": "the bearer token is not valid"})])
    with pytest.raises(DtmaAuthError) as info:
        client.get("status")
    assert "check the token option or DTMA_BEARER_TOKEN" in info.value.message
    assert TOKEN not in info.value.message


def test_429_carries_retry_after():
    client, _fake = client_with([FakeResponse(429, {"message": "too many restarts"}, headers={"Retry-After": "30"})])
    with pytest.raises(DtmaRateLimited) as info:
        client.post("mcp", "servers", "s", "restart")
    assert info.value.retry_after == 30 and info.value.status == 429


@pytest.mark.parametrize("header, seconds", [
    ("30", 30), (" 7 ", 7), ("0", 0), (None, None), ("soon", None), ("-5", None), ("", None),
    ("Mon, 30 Nov 2026 09:00:40 GMT", 40),   # an HTTP-date: seconds from now, rounded up
    ("Mon, 30 Nov 2026 08:59:00 GMT", 0),    # in the past: now
])
def test_retry_after_is_parsed_once_into_whole_seconds(header, seconds):
    now = _api.datetime(2026, 11, 30, 9, 0, 0, tzinfo=_api.timezone.utc)
    assert _api.parse_retry_after(header, now=now) == seconds


def test_a_429_with_an_unreadable_retry_after_has_none():
    client, _fake = client_with([FakeResponse(429, {"message": "busy"}, headers={"Retry-After": "later"})])
    with pytest.raises(DtmaRateLimited) as info:
        client.post("ssh", "execute", json={})
    assert info.value.retry_after is None


# --- verbs: each route once, its path quoted, its own wait added to its timeout ---------------------------------

def test_restart_server_adds_the_grace_to_its_own_timeout():
    client, fake = client_with([FakeResponse(200, {"data": {"state": "running"}})], timeout=30)
    assert client.restart_server("web/1", 12) == {"data": {"state": "running"}}
    call = fake.calls[0]
    assert (call["method"], call["url"]) == ("POST", "http://agent.example:30000/mcp/servers/web%2F1/restart")
    assert call["params"] == {"timeout": 12} and call["timeout"] == 42


@pytest.mark.parametrize("verb, args, method, path, params, timeout", [
    ("stop_server", ("s", 5), "POST", "/mcp/servers/s/stop", {"timeout": 5}, 35),
    ("start_server", ("s",), "POST", "/mcp/servers/s/start", {"timeout": 0}, 30),
    ("remove_group", ("g", False, 4), "DELETE", "/mcp/groups/g", {"forceRemove": "false", "gracefulTimeoutMs": 4000}, 34),
    ("remove_group", ("g", True, 0), "DELETE", "/mcp/groups/g", {"forceRemove": "true", "gracefulTimeoutMs": 0}, 30),
    ("group_health", ("g", 2.25), "GET", "/mcp/health/g", {"retryFor": 2.2}, 42.25),
    ("tool_action", ("t", "stop", 3), "POST", "/tools/t/stop", {"timeout": 3}, 33),
    ("tool_action", ("t", "start", 3), "POST", "/tools/t/start", None, 33),
    ("remove_tool", ("t", 9), "DELETE", "/tools/t", {"timeout": 9}, 39),
    ("converge_tool", ("t", {}, 13), "PUT", "/tools/t", None, 43),
    ("converge_tool", ("t", {}, 13, False), "PUT", "/tools/t", {"start": "false"}, 43),
    ("deploy_group", ({}, 20), "POST", "/mcp/groups", None, 50),
    ("execute", ({"argv": ["true"]}, 60), "POST", "/ssh/execute", None, 90),
    ("mcp_status", (True,), "GET", "/mcp/status", {"probe": "true"}, 30),
    ("diagnostics", ("logs", 5), "GET", "/diagnostics/logs", {"lines": 5}, 30),
    ("status", (), "GET", "/status", None, 30),
])
def test_each_verb_calls_its_route_with_its_own_timeout(verb, args, method, path, params, timeout):
    answer = {"data": {"servers": [], "plan": {}}, "mcp_servers": []}
    client, fake = client_with([FakeResponse(201 if verb == "deploy_group" else 200, answer)], timeout=30)
    getattr(client, verb)(*args)
    call = fake.calls[0]
    assert (call["method"], call["url"], call["params"]) == (method, "http://agent.example:30000" + path, params)
    assert call["timeout"] == timeout


def test_health_is_one_attempt_and_503_is_an_answer(no_sleep):
    client, fake = client_with([FakeResponse(503, {"status": "degraded", "docker": False})])
    assert client.health() == (503, {"status": "degraded", "docker": False})
    client, fake = client_with([requests.exceptions.ConnectionError("refused")])
    with pytest.raises(DtmaConnectionError):
        client.health()
    assert len(fake.calls) == 1 and no_sleep == []


def test_health_with_the_usual_retries_rides_out_a_blip(no_sleep):
    client, fake = client_with([requests.exceptions.ConnectionError("refused"), FakeResponse(200, {"status": "ok"})])
    assert client.health(retries=None) == (200, {"status": "ok"})
    assert len(fake.calls) == 2


def test_mcp_servers_of_one_group():
    servers = [{"name": "a", "group_id": "g1"}, {"name": "b", "group_id": "g2"}]
    client, _fake = client_with([FakeResponse(200, {"mcp_servers": servers})])
    assert client.mcp_servers("g1") == [servers[0]]


@pytest.mark.parametrize("body, text", [
    ({"message": "m", "reason": "r", "error": "e"}, "m"),
    ({"reason": "r", "error": "e"}, "r"),
    ({"error": "e"}, "e"),
    ({}, "no explanation in the answer"),
    (["not", "a", "dict"], "no explanation in the answer"),
    (None, "no explanation in the answer"),
])
def test_error_for_takes_the_agents_own_explanation(body, text):
    exc = error_for(409, body)
    assert isinstance(exc, DtmaConflict)
    assert exc.message == "DTMA agent answered HTTP 409: " + text
    assert exc.body == (body if isinstance(body, dict) else {})


def test_dtma_error_defaults():
    exc = DtmaError("boom")
    assert exc.message == "boom" and exc.status is None and exc.body == {}
    assert DtmaRateLimited("slow").retry_after is None


# --- retries -----------------------------------------------------------------------------------------------

def test_get_is_retried_on_connection_errors_then_succeeds(no_sleep):
    client, fake = client_with([requests.exceptions.ConnectionError("refused"), requests.exceptions.Timeout("slow"),
                                FakeResponse(200, {"ok": 1})])
    assert client.get("status") == {"ok": 1}
    assert len(fake.calls) == 3
    assert no_sleep == [0.5, 1.0]


def test_get_gives_up_after_the_retries_with_a_connection_error(no_sleep):
    client, fake = client_with([requests.exceptions.ConnectionError("refused")] * 3)
    with pytest.raises(DtmaConnectionError) as info:
        client.get("status")
    assert len(fake.calls) == 1 + DtmaClient.GET_RETRIES
    assert info.value.message == "the DTMA agent at http://agent.example:30000 did not answer: ConnectionError"
    assert info.value.status is None
    assert TOKEN not in info.value.message


def test_retries_can_be_turned_off_per_client(no_sleep):
    client, fake = client_with([requests.exceptions.ConnectionError("refused")])
    client.GET_RETRIES = 0
    with pytest.raises(DtmaConnectionError):
        client.get("health")
    assert len(fake.calls) == 1 and no_sleep == []


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT"])
def test_other_methods_are_not_retried(method, no_sleep):
    client, fake = client_with([requests.exceptions.ConnectionError("refused"), FakeResponse(200, {})])
    with pytest.raises(DtmaConnectionError):
        client.request(method, ("restart",))
    assert len(fake.calls) == 1 and no_sleep == []


def test_a_timeout_is_a_connection_error():
    client, _fake = client_with([requests.exceptions.ReadTimeout("read timed out")])
    with pytest.raises(DtmaConnectionError) as info:
        client.post("tools", json={})
    assert info.value.message.endswith("did not answer: ReadTimeout")


def test_tls_failures_are_not_retried_and_say_tls(no_sleep):
    client, fake = client_with([requests.exceptions.SSLError("certificate verify failed")])
    with pytest.raises(DtmaConnectionError) as info:
        client.get("status")
    assert len(fake.calls) == 1 and no_sleep == []
    assert info.value.message.startswith("TLS failure talking to the DTMA agent at http://agent.example:30000")
    assert "certificate verify failed" in info.value.message


def test_http_errors_are_not_retried():
    client, fake = client_with([FakeResponse(503, {"message": "docker unavailable"}), FakeResponse(200, {})])
    with pytest.raises(DtmaServerError):
        client.get("status")
    assert len(fake.calls) == 1
