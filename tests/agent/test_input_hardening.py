"""Bad input is a 4xx in the one error shape, never a 500 (issue 10, item 6), against a real agent."""

from __future__ import annotations

import secrets

import docker
import pytest
import requests
from dtma_testing import BUSYBOX, wait_until


def assert_error_shape(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    out = r.json()
    assert out["success"] is False and out["error"] and out["message"] and out["timestamp"], out
    return out


def fields(out: dict) -> list[str]:
    return [f["field"] for f in out.get("fields", [])]


@pytest.mark.parametrize("path, param, value", [
    ("/tools/dtmatest-none/logs", "since", "²"),
    ("/tools/dtmatest-none/logs", "since", "٣"),
    ("/tools/dtmatest-none/logs", "since", "２０２４-01-01"),
    ("/tools/dtmatest-none/logs", "tail", "٣"),
    ("/mcp/servers/dtmatest-none/logs", "since", "²"),
    ("/mcp/servers/dtmatest-none/logs", "tail", "٣"),
    ("/diagnostics/logs", "lines", "٣"),
    ("/diagnostics/logs", "lines", "²"),
    ("/diagnostics/logs", "lines", "1_0"),
])
def test_unicode_digits_in_query_numbers_are_422_naming_the_param(agent, path, param, value):
    out = assert_error_shape(agent.get(path, params={param: value}), 422)
    assert param in fields(out), out


@pytest.mark.parametrize("body, field", [
    ('{"command": "echo \\ud800"}', "command"),
    ('{"argv": ["echo", "\\udfff"]}', "argv"),
    ('{"command": "echo hi", "dry_run": "yes"}', "dry_run"),
    ('{"command": "echo hi", "dry_run": 1}', "dry_run"),
    ('{"command": "echo hi", "timeout": "1000"}', "timeout"),
    ('{"command": "echo hi", "timeout": 1000.5}', "timeout"),
])
def test_exec_body_is_strict(agent, body, field):
    r = agent.session.post(agent.url + "/ssh/execute", data=body.encode(), headers={"Content-Type": "application/json"},
                           timeout=10)
    out = assert_error_shape(r, 422)
    assert any(f == field or f.startswith(field + ".") for f in fields(out)), out


@pytest.mark.parametrize("options, field", [
    ({"sharedNetworking": "yes"}, "options.sharedNetworking"),
    ({"sharedNetworking": 1}, "options.sharedNetworking"),
    ({"maxConcurrentDeployments": "3"}, "options.maxConcurrentDeployments"),
    ({"maxConcurrentDeployments": True}, "options.maxConcurrentDeployments"),
])
def test_group_options_are_strict(agent, name, options, field):
    body = {"groupId": name("grp"), "options": options,
            "servers": [{"instanceNameOnToolbox": name("s"), "dockerImageUrl": BUSYBOX}]}
    out = assert_error_shape(agent.post("/mcp/validate", json=body), 422)
    assert field in fields(out), out


@pytest.mark.parametrize("server, field", [
    ({"resourceLimits": {"cpus": True}}, "servers.0.resourceLimits"),
    ({"resourceLimits": {"cpus": "0.5"}}, "servers.0.resourceLimits"),
    ({"resourceLimits": {"template": ["small"]}}, "servers.0.resourceLimits"),
    ({"portBindings": {"80": True}}, "servers.0.portBindings"),
    ({"portBindings": {"80": 22}}, "servers.0.portBindings"),
    ({"portBindings": {"80/tcp": [{"HostPort": "31000", "HostIp": "not-an-ip"}]}}, "servers.0.portBindings"),
    ({"environmentVariables": {"A": {"nested": 1}}}, "servers.0.environmentVariables"),
    ({"dockerImageUrl": "busybox\ud800"}, "servers.0.dockerImageUrl"),
])
def test_server_fields_are_strict(agent, name, server, field):
    body = {"groupId": name("grp"), "servers": [{"instanceNameOnToolbox": name("s"), "dockerImageUrl": BUSYBOX, **server}]}
    out = assert_error_shape(agent.post("/mcp/validate", json=body), 422)
    assert field in fields(out), out


@pytest.mark.parametrize("value", ["yes", "1", "on", "True"])
def test_query_booleans_are_strict(agent, value):
    out = assert_error_shape(agent.delete("/mcp/groups/dtmatest-none", params={"forceRemove": value}), 422)
    assert "forceRemove" in fields(out)
    out = assert_error_shape(agent.get("/mcp/status", params={"probe": value}), 422)
    assert "probe" in fields(out)


def test_body_over_the_limit_is_413_with_or_without_content_length(agent):
    big = b'{"command": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    r = agent.session.post(agent.url + "/ssh/execute", data=big, headers={"Content-Type": "application/json"}, timeout=30)
    assert_error_shape(r, 413)

    def chunks():  # chunked transfer encoding: no Content-Length to trust
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    r = agent.session.post(agent.url + "/ssh/execute", data=chunks(), headers={"Content-Type": "application/json"},
                           timeout=30)
    assert_error_shape(r, 413)
    # just under the limit is parsed as usual (and refused by the schema's own limit: 422)
    small = b'{"command": "' + b"x" * (1024 * 1000) + b'"}'
    r = agent.session.post(agent.url + "/ssh/execute", data=small, headers={"Content-Type": "application/json"}, timeout=30)
    assert_error_shape(r, 422)


def test_unauthenticated_big_body_is_401_first(agent):
    r = requests.post(agent.url + "/tools", data=b"x" * (2 * 1024 * 1024), timeout=30)
    assert r.status_code == 401


def test_json_nested_beyond_the_parser_is_a_4xx_in_the_error_shape(agent):
    r = agent.session.post(agent.url + "/tools", data="[" * 200000 + "]" * 200000,
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code in (400, 422), r.text
    assert_error_shape(r, r.status_code)


@pytest.mark.parametrize("method, path, status", [("GET", "/no/such/route", 404), ("PUT", "/tools", 405)])
def test_starlette_errors_use_the_error_shape(agent, method, path, status):
    assert_error_shape(agent.session.request(method, agent.url + path, timeout=10), status)


def test_query_values_never_reach_the_logs(make_agent):
    a = make_agent()
    secret = "SECRET" + secrets.token_hex(12)
    assert a.get("/status", params={"token": secret}).status_code == 200
    assert requests.get(a.url + "/status", params={"token": secret}, timeout=10).status_code == 401
    assert a.get("/diagnostics/logs", params={"lines": "10", "x": secret}).status_code == 200
    assert wait_until(lambda: '"GET /status?… HTTP/1.1" 401' in a.log(), 5), a.log()
    logs = a.get("/diagnostics/logs", params={"lines": 10000})
    assert secret not in a.log()
    assert secret not in logs.text


# --- 5xx found by tests/agent/test_schema_fuzz.py, each kept as a regression test -----------------------------

@pytest.mark.parametrize("image", ["True", ")", "Upper/Case", "a@A:0c" + "0" * 32, "a@sha256:" + "F" * 64,
                                   "[f2Cc6]/p8lx/x", "x" * 256,
                                   "busybox:t\u00e9st", "busybox:\u0663"])  # Docker's tag \w is ASCII only
def test_invalid_image_reference_is_422_not_502(agent, name, image):
    """Docker answers inspect of a malformed reference with 400 "invalid reference format" (was a 502)."""
    tool = {"dockerImageUrl": image, "instanceNameOnToolbox": name("img"), "accountToolInstanceId": "x"}
    for route in ("/tools", "/tools/validate"):
        out = assert_error_shape(agent.post(route, json=tool), 422)
        assert "dockerImageUrl" in fields(out), out
    group = {"groupId": name("grp"), "servers": [{"instanceNameOnToolbox": name("s"), "dockerImageUrl": image}]}
    out = assert_error_shape(agent.post("/mcp/validate", json=group), 422)
    assert "servers.0.dockerImageUrl" in fields(out), out


def test_a_name_that_is_an_ambiguous_id_prefix_is_not_found(agent, docker_api, name):
    """`0` is no container's name but may prefix several ids: Docker's 500 "Multiple IDs found" (was a 502)."""
    made = []
    try:
        while True:
            prefixes = [c["Id"][0] for c in docker_api.containers(all=True)]
            ambiguous = next((p for p in set(prefixes) if prefixes.count(p) > 1), None)
            if ambiguous:
                break
            made.append(docker_api.create_container(BUSYBOX, command=["true"], name=name("amb"))["Id"])
        assert_error_shape(agent.post(f"/mcp/servers/{ambiguous}/stop"), 404)
        assert_error_shape(agent.post(f"/mcp/servers/{ambiguous}/restart"), 404)
        assert_error_shape(agent.get(f"/tools/{ambiguous}/logs"), 404)
        r = agent.post("/tools/validate", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": ambiguous,
                                                "accountToolInstanceId": "x"})
        assert r.status_code == 200 and r.json()["data"]["plan"]["action"] == "create", r.text
    finally:
        for cid in made:
            try:
                docker_api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
