"""MCP groups against a real agent and a real Docker engine: deploy, converge, fail cleanly, remove.

Every group id and server name comes from the `name` fixture (prefix `dtmatest-`), so whatever a failing
test leaves behind is removed at the end of the session; each test also deletes its own groups.
"""

from __future__ import annotations

import socket
import threading
import time

import docker.errors
import pytest
import requests

from dtma_testing import BUSYBOX, MCP_IMAGE, free_port, wait_until

SLEEP = {"Cmd": ["sleep", "3600"]}
# PID 1 of the command ignores SIGTERM, so only a kill (or the end of the grace period) stops it.
IGNORES_TERM = {"Cmd": ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"]}
LABELS = ("agentopia.managed_by", "agentopia.kind", "agentopia.group_id", "agentopia.instance_name",
          "agentopia.account_tool_instance_id", "agentopia.mcp_transport", "agentopia.mcp_endpoint_path",
          "agentopia.config_hash")


# ---------------------------------------------------------------- helpers

def busybox(name: str, **fields) -> dict:
    spec = {"instanceNameOnToolbox": name, "dockerImageUrl": BUSYBOX, "accountToolInstanceId": f"ati-{name}",
            "baseConfigOverrideJson": dict(SLEEP)}
    spec.update(fields)
    return spec


def mcp_server(name: str, **fields) -> dict:
    spec = {"instanceNameOnToolbox": name, "dockerImageUrl": MCP_IMAGE, "accountToolInstanceId": f"ati-{name}",
            "mcpTransportType": "streamable-http", "mcpEndpointPath": "/mcp",
            "environmentVariables": {"MCP_TRANSPORT": "streamable-http", "MCP_PATH": "/mcp"}}
    spec.update(fields)
    return spec


def payload(group_id: str, *servers: dict, **options) -> dict:
    body = {"groupId": group_id, "servers": list(servers)}
    if options:
        body["options"] = options
    return body


def outcomes(response) -> dict:
    return {s["name"]: s for s in response.json()["data"]["servers"]}


def group_containers(api, group_id: str, instance: str | None = None) -> list[dict]:
    labels = [f"agentopia.group_id={group_id}"]
    if instance:
        labels.append(f"agentopia.instance_name={instance}")
    return api.containers(all=True, filters={"label": labels})


def container_named(api, name: str) -> dict | None:
    """The container with exactly this name (the name filter of the list call is a substring match)."""
    for c in api.containers(all=True, filters={"name": name}):
        if f"/{name}" in c["Names"]:
            return c
    return None


def deploy(agent, body: dict, expect: int | tuple = 201):
    r = agent.post("/mcp/groups", json=body)
    expected = expect if isinstance(expect, tuple) else (expect,)
    assert r.status_code in expected, r.text
    return r


@pytest.fixture
def foreign(docker_api, cleanup):
    """Create and start a container the agent does not manage."""
    def make(name: str, host_port: int | None = None) -> str:
        host_config = docker_api.create_host_config(port_bindings={80: host_port} if host_port else None, init=True)
        cid = docker_api.create_container(BUSYBOX, command=["sleep", "3600"], name=name, host_config=host_config,
                                          ports=[80] if host_port else None)["Id"]
        cleanup.append(name)
        docker_api.start(cid)
        return cid
    return make


# ---------------------------------------------------------------- deploy and converge

def test_deploy_applies_the_spec_and_a_repost_changes_nothing(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    port = free_port()
    body = payload(gid,
                   mcp_server(a, portBindings={"8080": port}, environmentVariables={
                       "MCP_TRANSPORT": "streamable-http", "MCP_PATH": "/mcp", "GREETING": "hello world", "N": 7},
                       resourceLimits={"memory": "128m", "cpus": 0.5}),
                   mcp_server(b, resourceLimits="small"))
    r = deploy(agent, body, 201)
    first = r.json()
    assert first["success"] is True
    result = outcomes(r)
    assert set(result) == {a, b}
    assert all(s["outcome"] == "created" for s in result.values()), result

    for server in (a, b):
        info = docker_api.inspect_container(result[server]["container_id"])
        assert info["Name"] == f"/{server}"
        assert info["State"]["Running"] is True
        labels = info["Config"]["Labels"]
        for label in LABELS:
            assert labels.get(label), f"{server}: label {label} missing: {labels}"
        assert labels["agentopia.managed_by"] == "dtma"
        assert labels["agentopia.kind"] == "mcp"
        assert labels["agentopia.group_id"] == gid
        assert labels["agentopia.instance_name"] == server
        assert labels["agentopia.account_tool_instance_id"] == f"ati-{server}"
        assert labels["agentopia.mcp_transport"] == "streamable-http"
        assert labels["agentopia.mcp_endpoint_path"] == "/mcp"
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"

    info_a = docker_api.inspect_container(result[a]["container_id"])
    assert info_a["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == str(port)
    published = info_a["NetworkSettings"]["Ports"]["8080/tcp"]
    assert published and {p["HostPort"] for p in published} == {str(port)}
    assert "GREETING=hello world" in info_a["Config"]["Env"]
    assert "N=7" in info_a["Config"]["Env"]
    assert info_a["HostConfig"]["Memory"] == 128 * 1024 * 1024
    assert info_a["HostConfig"]["NanoCpus"] == 500_000_000
    # the published port reaches the server (the SDK server needs about a second to start)
    assert wait_until(lambda: _connects(port), 10), f"nothing answers on 127.0.0.1:{port}"

    templates = agent.get("/mcp/templates").json()["data"]
    info_b = docker_api.inspect_container(result[b]["container_id"])
    assert info_b["HostConfig"]["Memory"] == _bytes(templates["small"]["memory"])
    assert info_b["HostConfig"]["NanoCpus"] == int(templates["small"]["cpus"] * 1e9)

    # the identical payload again: nothing is recreated
    r2 = deploy(agent, body, (200, 201))
    again = outcomes(r2)
    assert r2.json()["success"] is True
    assert {n: s["outcome"] for n, s in again.items()} == {a: "unchanged", b: "unchanged"}
    assert {n: s["container_id"] for n, s in again.items()} == {n: s["container_id"] for n, s in result.items()}
    assert r2.json()["data"]["changed"] is False
    assert len(group_containers(docker_api, gid)) == 2


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def _bytes(size: str) -> int:
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    return int(size[:-1]) * units[size[-1].lower()]


def test_changed_environment_recreates_only_that_server(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    port = free_port()  # the recreated server keeps its host port: the old container must free it first
    first = outcomes(deploy(agent, payload(gid, busybox(a, environmentVariables={"V": "1"}, portBindings={"80": port}),
                                           busybox(b))))
    r = deploy(agent, payload(gid, busybox(a, environmentVariables={"V": "2"}, portBindings={"80": port}), busybox(b)),
               (200, 201))
    second = outcomes(r)
    assert second[a]["outcome"] == "recreated", second
    assert second[b]["outcome"] == "unchanged", second
    assert second[a]["container_id"] != first[a]["container_id"]
    assert second[b]["container_id"] == first[b]["container_id"]
    assert r.json()["data"]["changed"] is True
    # the old container of a is gone, the new one runs with the new value
    with pytest.raises(docker.errors.NotFound):
        docker_api.inspect_container(first[a]["container_id"])
    info = docker_api.inspect_container(second[a]["container_id"])
    assert info["State"]["Running"] and "V=2" in info["Config"]["Env"]
    assert info["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == str(port)
    assert len(group_containers(docker_api, gid)) == 2


def test_server_dropped_from_the_payload_is_removed(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    first = outcomes(deploy(agent, payload(gid, busybox(a), busybox(b))))
    second = outcomes(deploy(agent, payload(gid, busybox(a)), (200, 201)))
    assert second[a]["outcome"] == "unchanged" and second[a]["container_id"] == first[a]["container_id"]
    assert second[b]["outcome"] == "removed", second
    assert container_named(docker_api, b) is None
    assert [c["Id"] for c in group_containers(docker_api, gid)] == [first[a]["container_id"]]


def test_stopped_server_is_started_again_not_recreated(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    first = outcomes(deploy(agent, payload(gid, busybox(a), busybox(b))))
    docker_api.stop(first[a]["container_id"], timeout=2)
    second = outcomes(deploy(agent, payload(gid, busybox(a), busybox(b)), (200, 201)))
    assert second[a]["outcome"] == "started" and second[a]["container_id"] == first[a]["container_id"], second
    assert second[b]["outcome"] == "unchanged"
    assert docker_api.inspect_container(first[a]["container_id"])["State"]["Running"] is True


def test_port_binding_forms_and_a_json_string_override(agent, docker_api, name, groups):
    """The forms callers send: {"80": port}, Docker's {"80/tcp": [{"HostPort": "port"}]}, a list of objects;
    baseConfigOverrideJson as a JSON string."""
    gid, a, b, c = name("grp"), name("a"), name("b"), name("c")
    groups.append(gid)
    pa, pb, pc = free_port(), free_port(), free_port()
    deploy(agent, payload(
        gid,
        busybox(a, portBindings={"80": pa}, baseConfigOverrideJson='{"Cmd": ["sleep", "3600"]}'),
        busybox(b, portBindings={"80/tcp": [{"HostPort": str(pb), "HostIp": "127.0.0.1"}]}),
        busybox(c, portBindings=[{"containerPort": 80, "hostPort": pc, "protocol": "tcp"}])))
    for server, port, ip in ((a, pa, ""), (b, pb, "127.0.0.1"), (c, pc, "")):
        info = docker_api.inspect_container(server)
        assert info["State"]["Running"] is True
        binding = info["HostConfig"]["PortBindings"]["80/tcp"][0]
        assert binding["HostPort"] == str(port) and binding["HostIp"] == ip, (server, binding)
        assert info["Config"]["Cmd"] == ["sleep", "3600"]


def test_state_is_read_back_after_an_agent_restart(make_agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    body = payload(gid, busybox(a), busybox(b, portBindings={"80": free_port()}))
    agent_a = make_agent()
    first = outcomes(deploy(agent_a, body))
    agent_a.stop()

    agent_b = make_agent()
    status = agent_b.get("/mcp/status")
    assert status.status_code == 200, status.text
    listed = {s["server"]: s for s in status.json()["mcp_servers"] if s["group_id"] == gid}
    assert set(listed) == {a, b}
    assert all(s["state"] == "running" for s in listed.values())
    assert {s["container_id"] for s in listed.values()} == {first[a]["container_id"], first[b]["container_id"]}
    again = outcomes(deploy(agent_b, body, (200, 201)))
    assert {n: s["outcome"] for n, s in again.items()} == {a: "unchanged", b: "unchanged"}
    assert {n: s["container_id"] for n, s in again.items()} == {n: s["container_id"] for n, s in first.items()}


def test_concurrent_deploys_of_one_group_leave_one_container_per_server(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    body = payload(gid, busybox(a), busybox(b))
    barrier = threading.Barrier(4)
    responses: list = [None] * 4

    def post(i: int) -> None:
        barrier.wait()
        responses[i] = requests.post(f"{agent.url}/mcp/groups", json=body, timeout=120,
                                     headers={"Authorization": f"Bearer {agent.token}"})

    threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert all(r is not None for r in responses), "a request did not finish"
    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert all(r.json()["success"] is True for r in responses)
    for server in (a, b):
        found = group_containers(docker_api, gid, server)
        assert len(found) == 1, f"{server}: {len(found)} containers"
        assert found[0]["State"] == "running"
        # the deploys serialized: exactly one of them created the server, the others found it unchanged
        seen = sorted(outcomes(r)[server]["outcome"] for r in responses)
        assert seen == ["created", "unchanged", "unchanged", "unchanged"], seen
        assert {outcomes(r)[server]["container_id"] for r in responses} == {found[0]["Id"]}


# ---------------------------------------------------------------- failures leave nothing half-created

def test_missing_image_fails_the_server_and_creates_nothing(agent, docker_api, name, groups):
    gid, good, bad = name("grp"), name("good"), name("bad")
    groups.append(gid)
    r = agent.post("/mcp/groups", json=payload(gid, busybox(good), busybox(bad, dockerImageUrl="local/does-not-exist:1")))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["success"] is False
    result = outcomes(r)
    assert result[bad]["outcome"] == "failed"
    assert "dockerImageUrl" in result[bad]["message"]
    assert "dockerImageUrl" in body["message"]
    assert container_named(docker_api, bad) is None
    # the server that could be deployed was, and says so
    assert result[good]["outcome"] == "created"


def test_host_port_taken_by_a_foreign_container_is_409(agent, docker_api, name, groups, foreign):
    gid, server, other = name("grp"), name("srv"), name("foreign")
    groups.append(gid)
    port = free_port()
    foreign_id = foreign(other, host_port=port)
    r = agent.post("/mcp/groups", json=payload(gid, busybox(server, portBindings={"80": port})))
    assert r.status_code == 409, r.text
    assert r.json()["success"] is False
    result = outcomes(r)[server]
    assert result["outcome"] == "failed" and result["status"] == 409
    assert "port" in result["message"].lower()
    assert container_named(docker_api, server) is None
    info = docker_api.inspect_container(foreign_id)
    assert info["State"]["Running"] is True and info["Name"] == f"/{other}"


def test_host_port_taken_by_a_host_socket_is_409(agent, docker_api, name, groups):
    gid, server = name("grp"), name("srv")
    groups.append(gid)
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        r = agent.post("/mcp/groups", json=payload(gid, busybox(server, portBindings={"80": port})))
    assert r.status_code == 409, r.text
    assert outcomes(r)[server]["outcome"] == "failed"
    assert container_named(docker_api, server) is None


def test_name_used_by_an_unmanaged_container_is_a_conflict(agent, docker_api, name, groups, foreign):
    gid, taken = name("grp"), name("taken")
    groups.append(gid)
    foreign_id = foreign(taken)
    r = agent.post("/mcp/groups", json=payload(gid, busybox(taken)))
    assert r.status_code == 409, r.text
    result = outcomes(r)[taken]
    assert result["outcome"] == "failed"
    assert "conflict" in result["error"] and "not manage" in result["message"]
    info = docker_api.inspect_container(taken)
    assert info["Id"] == foreign_id and info["State"]["Running"] is True
    assert "agentopia.group_id" not in (info["Config"]["Labels"] or {})
    assert group_containers(docker_api, gid) == []


def test_name_used_by_another_group_is_a_conflict(agent, docker_api, name, groups):
    g1, g2, server = name("grp"), name("grp"), name("srv")
    groups.extend([g1, g2])
    first = outcomes(deploy(agent, payload(g1, busybox(server))))
    r = agent.post("/mcp/groups", json=payload(g2, busybox(server)))
    assert r.status_code == 409, r.text
    assert g1 in outcomes(r)[server]["message"]
    info = docker_api.inspect_container(server)
    assert info["Id"] == first[server]["container_id"] and info["Config"]["Labels"]["agentopia.group_id"] == g1


def test_name_used_by_a_managed_tool_is_a_conflict(agent, docker_api, name, groups, cleanup):
    gid, tool = name("grp"), name("tool")
    groups.append(gid)
    cleanup.append(tool)
    r = agent.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": tool,
                                   "accountToolInstanceId": "ati-tool", "baseConfigOverrideJson": SLEEP})
    assert r.status_code == 201, r.text
    tool_id = r.json()["data"]["container_id"]
    r = agent.post("/mcp/groups", json=payload(gid, busybox(tool)))
    assert r.status_code == 409, r.text
    message = outcomes(r)[tool]["message"]
    assert "tool" in message and "not manage" not in message, message
    info = docker_api.inspect_container(tool)
    assert info["Id"] == tool_id and info["Config"]["Labels"]["agentopia.kind"] == "tool"


def test_failed_recreate_keeps_the_old_container(agent, docker_api, name, groups):
    gid, server = name("grp"), name("srv")
    groups.append(gid)
    first = outcomes(deploy(agent, payload(gid, busybox(server))))[server]
    r = agent.post("/mcp/groups", json=payload(gid, busybox(server, dockerImageUrl="local/does-not-exist:1")))
    assert r.status_code == 422, r.text
    result = outcomes(r)[server]
    assert result["outcome"] == "failed" and "dockerImageUrl" in result["message"]
    info = docker_api.inspect_container(server)
    assert info["Id"] == first["container_id"]
    assert info["State"]["Running"] is True
    assert len(group_containers(docker_api, gid)) == 1


def test_recreate_that_fails_to_start_restores_the_old_container(agent, docker_api, name, groups, foreign):
    """The new container cannot start (its host port is taken): the old one is renamed back and restarted."""
    gid, server, other = name("grp"), name("srv"), name("foreign")
    groups.append(gid)
    old_port, taken_port = free_port(), free_port()
    first = outcomes(deploy(agent, payload(gid, busybox(server, portBindings={"80": old_port}))))[server]
    foreign(other, host_port=taken_port)
    r = agent.post("/mcp/groups", json=payload(gid, busybox(server, portBindings={"80": taken_port})))
    assert r.status_code == 409, r.text
    result = outcomes(r)[server]
    assert result["outcome"] == "failed" and "restored" in result["message"]
    info = docker_api.inspect_container(server)
    assert info["Id"] == first["container_id"]
    assert info["State"]["Running"] is True
    assert info["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == str(old_port)
    # nothing parked or half-created is left in the group
    assert [c["Id"] for c in group_containers(docker_api, gid)] == [first["container_id"]]
    # and the payload that works converges back to unchanged
    again = outcomes(deploy(agent, payload(gid, busybox(server, portBindings={"80": old_port})), (200, 201)))[server]
    assert again["outcome"] == "unchanged" and again["container_id"] == first["container_id"]


# ---------------------------------------------------------------- refused payloads

UNSAFE = [
    ({"HostConfig": {"Privileged": True}}, "Privileged"),
    ({"Privileged": True}, "Privileged"),
    ({"hostconfig": {"privileged": True}}, "Privileged"),
    ({"HostConfig": {"CapAdd": ["SYS_ADMIN"]}}, "CapAdd"),
    ({"HostConfig": {"Binds": ["/:/host"]}}, "Binds"),
    ({"HostConfig": {"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}}, "Binds"),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}}, "Mounts"),
    ({"HostConfig": {"NetworkMode": "host"}}, "NetworkMode"),
    ({"HostConfig": {"PidMode": "host"}}, "PidMode"),
    ({"HostConfig": {"Devices": [{"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem",
                                  "CgroupPermissions": "rwm"}]}}, "Devices"),
    ({"HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}}, "SecurityOpt"),
]


@pytest.mark.parametrize("override,key", UNSAFE, ids=[f"{case[1]}-{i}" for i, case in enumerate(UNSAFE)])
def test_unsafe_override_is_400_naming_the_key(agent, docker_api, name, groups, override, key):
    gid, safe, unsafe = name("grp"), name("safe"), name("unsafe")
    groups.append(gid)
    body = payload(gid, busybox(safe), busybox(unsafe, baseConfigOverrideJson={**SLEEP, **override}))
    for route in ("/mcp/groups", "/mcp/validate"):
        r = agent.post(route, json=body)
        assert r.status_code == 400, f"{route}: {r.text}"
        assert r.json()["success"] is False
        assert key in r.json()["message"], r.text
    # refused before anything was done: not even the safe server exists
    assert group_containers(docker_api, gid) == []
    assert container_named(docker_api, safe) is None and container_named(docker_api, unsafe) is None


def test_volume_mount_with_bind_driver_options_is_refused(agent, docker_api, name, groups, tmp_path):
    """A `volume` mount whose local-driver options are `type=none,o=bind,device=<host path>` is a host bind."""
    gid, server, volume = name("grp"), name("srv"), name("vol")
    groups.append(gid)
    (tmp_path / "secret").write_text("host file")
    override = {"Cmd": ["cat", "/host/secret"], "HostConfig": {"Mounts": [{
        "Type": "volume", "Source": volume, "Target": "/host",
        "VolumeOptions": {"DriverConfig": {"Name": "local",
                                           "Options": {"type": "none", "o": "bind", "device": str(tmp_path)}}}}]}}
    try:
        r = agent.post("/mcp/groups", json=payload(gid, busybox(server, baseConfigOverrideJson=override)))
        assert r.status_code == 400, r.text
        assert "Mounts" in r.json()["message"]
        assert container_named(docker_api, server) is None
    finally:
        agent.delete(f"/mcp/groups/{gid}", params={"forceRemove": "true"})
        try:
            docker_api.remove_volume(volume, force=True)
        except docker.errors.APIError:
            pass


def _invalid_cases(s):
    """(payload, text the 422 must name) for payloads that are wrong before Docker is asked anything."""
    a, b = s("a"), s("b")
    return [
        ({"servers": [busybox(a)]}, "groupId"),
        ({"groupId": s("grp"), "servers": []}, "servers"),
        (payload(s("grp"), busybox(a, mcpTransportType="carrier-pigeon")), "mcpTransportType"),
        (payload(s("grp"), busybox(a), busybox(a)), "instanceNameOnToolbox"),
        (payload(s("grp"), busybox(a), busybox(b), dependencyOrder=[a, "nobody"]), "dependencyOrder"),
        (payload(s("grp"), busybox(a, portBindings={"80": 70000})), "portBindings"),
        (payload(s("grp"), busybox(a, portBindings={"80": 31999}), busybox(b, portBindings={"81": 31999})), "31999"),
        (payload(s("grp"), busybox(a, resourceLimits="gigantic")), "resourceLimits"),
        (payload(s("grp"), busybox(a, resourceLimits={"memory": "lots"})), "resourceLimits"),
        (payload(s("grp"), busybox(a), maxConcurrentDeployments=0), "maxConcurrentDeployments"),
    ]


INVALID_IDS = ["no-groupId", "empty-servers", "bad-transport", "duplicate-name", "unknown-dependency",
               "port-70000", "same-host-port", "unknown-template", "memory-lots", "zero-concurrency"]


@pytest.mark.parametrize("case", range(len(INVALID_IDS)), ids=INVALID_IDS)
def test_invalid_payload_is_422_naming_the_field(agent, docker_api, name, case):
    body, field = _invalid_cases(name)[case]
    for route in ("/mcp/groups", "/mcp/validate"):
        r = agent.post(route, json=body)
        assert r.status_code == 422, f"{route}: {r.text}"
        err = r.json()
        assert err["success"] is False
        assert field in err["message"], err
        assert err["fields"], err
    if body.get("groupId"):
        assert group_containers(docker_api, body["groupId"]) == []


def test_invalid_field_is_named_in_fields(agent, name):
    """`fields[]` names the bad field itself, also for checks that span servers."""
    a = name("a")
    cases = {
        "servers.0.mcpTransportType": payload(name("grp"), busybox(a, mcpTransportType="x")),
        "servers.0.portBindings": payload(name("grp"), busybox(a, portBindings={"80": 70000})),
        "servers": payload(name("grp"), busybox(a), busybox(a)),
        "options": payload(name("grp"), busybox(a), dependencyOrder=["nobody"]),
    }
    for field, body in cases.items():
        r = agent.post("/mcp/groups", json=body)
        assert r.status_code == 422, r.text
        assert field in [f["field"] for f in r.json()["fields"]], (field, r.json())


# ---------------------------------------------------------------- options

def test_shared_networking_attaches_servers_with_their_names_as_aliases(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    network = f"agentopia-mcp-{gid}"
    r = deploy(agent, payload(gid, busybox(a), busybox(b), sharedNetworking=True))
    assert r.json()["data"]["network"] == network
    nets = docker_api.networks(names=[network])
    assert [n["Name"] for n in nets] == [network]
    for server in (a, b):
        attached = docker_api.inspect_container(server)["NetworkSettings"]["Networks"]
        assert network in attached, attached
        assert server in (attached[network]["Aliases"] or []), attached[network]
    # the servers reach each other by name over the group's network
    exec_id = docker_api.exec_create(a, ["/bin/busybox", "ping", "-c1", "-W2", b])["Id"]
    output = docker_api.exec_start(exec_id)
    assert docker_api.exec_inspect(exec_id)["ExitCode"] == 0, output

    deleted = agent.delete(f"/mcp/groups/{gid}", params={"gracefulTimeoutMs": 1000})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"]["network_removed"] is True
    assert [n for n in docker_api.networks(names=[network]) if n["Name"] == network] == []


def test_dependency_order_deploys_in_waves(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    # b is listed first in servers, but dependencyOrder puts a first
    deploy(agent, payload(gid, busybox(b), busybox(a), dependencyOrder=[a, b]))
    info_a, info_b = docker_api.inspect_container(a), docker_api.inspect_container(b)
    assert _instant(info_a["State"]["StartedAt"]) <= _instant(info_b["Created"]), \
        (info_a["State"]["StartedAt"], info_b["Created"])


def _instant(stamp: str) -> tuple:
    """Docker's RFC 3339 UTC time with up to 9 fraction digits (trailing zeros dropped) as a comparable tuple."""
    whole, _sep, fraction = stamp.rstrip("Z").partition(".")
    return whole, int(fraction.ljust(9, "0"))


def test_dependency_failure_stops_later_waves(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    r = agent.post("/mcp/groups", json=payload(gid, busybox(a, dockerImageUrl="local/does-not-exist:1"), busybox(b),
                                               dependencyOrder=[a, b]))
    assert r.status_code == 422, r.text
    result = outcomes(r)
    assert result[a]["outcome"] == "failed" and result[b]["outcome"] == "failed"
    assert result[b]["status"] == 424
    assert group_containers(docker_api, gid) == []


@pytest.mark.parametrize("concurrency", [1, 3])
def test_max_concurrent_deployments_is_accepted(agent, docker_api, name, groups, concurrency):
    gid = name("grp")
    groups.append(gid)
    servers = [busybox(name("s")) for _i in range(3)]
    result = outcomes(deploy(agent, payload(gid, *servers, maxConcurrentDeployments=concurrency)))
    assert all(s["outcome"] == "created" for s in result.values())
    assert len(group_containers(docker_api, gid)) == 3


# ---------------------------------------------------------------- delete

def test_delete_unknown_group_is_404(agent, name):
    r = agent.delete(f"/mcp/groups/{name('nothing')}")
    assert r.status_code == 404, r.text
    assert r.json()["success"] is False


@pytest.mark.parametrize("value", ["-1", "999999", "soon"])
def test_delete_with_bad_graceful_timeout_is_422(agent, docker_api, name, groups, value):
    gid, server = name("grp"), name("srv")
    groups.append(gid)
    deploy(agent, payload(gid, busybox(server)))
    r = agent.delete(f"/mcp/groups/{gid}", params={"gracefulTimeoutMs": value})
    assert r.status_code == 422, r.text
    assert "gracefulTimeoutMs" in r.json()["message"]
    assert len(group_containers(docker_api, gid)) == 1  # nothing was removed


def _ready(api, container: str) -> bool:
    return b"ready" in api.logs(container)


def test_delete_force_kills_at_once_and_graceful_waits(agent, docker_api, name, groups):
    g_force, g_grace, s_force, s_grace = name("grp"), name("grp"), name("kill"), name("grace")
    groups.extend([g_force, g_grace])
    deploy(agent, payload(g_force, busybox(s_force, baseConfigOverrideJson=IGNORES_TERM)))
    deploy(agent, payload(g_grace, busybox(s_grace, baseConfigOverrideJson=IGNORES_TERM)))
    assert wait_until(lambda: _ready(docker_api, s_force) and _ready(docker_api, s_grace), 10)

    started = time.monotonic()
    r = agent.delete(f"/mcp/groups/{g_force}", params={"forceRemove": "true"})
    forced = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["data"]["forceRemove"] is True
    assert forced < 1.5, f"forceRemove took {forced:.2f}s"

    started = time.monotonic()
    r = agent.delete(f"/mcp/groups/{g_grace}", params={"forceRemove": "false", "gracefulTimeoutMs": 2000})
    graceful = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["data"]["gracefulTimeoutMs"] == 2000
    assert 1.8 <= graceful < 8, f"graceful stop took {graceful:.2f}s"

    assert [(s["name"], s["outcome"]) for s in r.json()["data"]["servers"]] == [(s_grace, "removed")]
    for gid, server in ((g_force, s_force), (g_grace, s_grace)):
        assert group_containers(docker_api, gid) == []
        assert container_named(docker_api, server) is None
    # a deleted group is unknown afterwards
    assert agent.delete(f"/mcp/groups/{g_grace}").status_code == 404


def test_delete_graceful_stop_of_a_well_behaved_server_is_quick(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    deploy(agent, payload(gid, busybox(a), busybox(b)))
    started = time.monotonic()
    r = agent.delete(f"/mcp/groups/{gid}")  # default graceful stop; sleep under the init stops on SIGTERM
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 5
    assert {s["name"] for s in r.json()["data"]["servers"]} == {a, b}
    assert all(s["outcome"] == "removed" for s in r.json()["data"]["servers"])
    assert group_containers(docker_api, gid) == []


# ---------------------------------------------------------------- validate and templates

def test_validate_plans_without_deploying(agent, docker_api, name, groups):
    gid, a, b = name("grp"), name("a"), name("b")
    groups.append(gid)
    body = payload(gid, busybox(a), busybox(b), sharedNetworking=True)
    r = agent.post("/mcp/validate", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] is True and out["valid"] is True
    plan = {step["name"]: step for step in out["data"]["plan"]}
    assert {n: s["action"] for n, s in plan.items()} == {a: "create", b: "create"}
    assert out["data"]["changes"] == 2
    # validate created nothing: no container, no network
    assert group_containers(docker_api, gid) == []
    assert container_named(docker_api, a) is None and container_named(docker_api, b) is None
    assert not docker_api.networks(names=[f"agentopia-mcp-{gid}"])

    deployed = outcomes(deploy(agent, body))
    plan = {s["name"]: s for s in agent.post("/mcp/validate", json=body).json()["data"]["plan"]}
    assert {n: s["action"] for n, s in plan.items()} == {a: "unchanged", b: "unchanged"}
    assert {n: s["container_id"] for n, s in plan.items()} == {n: s["container_id"] for n, s in deployed.items()}

    changed = payload(gid, busybox(a, environmentVariables={"X": "1"}), sharedNetworking=True)
    plan = {s["name"]: s for s in agent.post("/mcp/validate", json=changed).json()["data"]["plan"]}
    assert {n: s["action"] for n, s in plan.items()} == {a: "recreate", b: "remove"}
    # still nothing changed in Docker
    assert {c["Id"] for c in group_containers(docker_api, gid)} == {s["container_id"] for s in deployed.values()}


def test_templates_list_the_presets(agent):
    r = agent.get("/mcp/templates")
    assert r.status_code == 200
    data = r.json()["data"]
    assert {"small", "medium", "large"} <= set(data)
    for preset in ("small", "medium", "large"):
        assert data[preset]["memory"] and data[preset]["cpus"] > 0
    assert _bytes(data["small"]["memory"]) < _bytes(data["medium"]["memory"]) < _bytes(data["large"]["memory"])


def test_mcp_routes_need_the_token(agent, name):
    gid = name("grp")
    for method, path in (("post", "/mcp/groups"), ("post", "/mcp/validate"), ("delete", f"/mcp/groups/{gid}"),
                         ("get", "/mcp/templates"), ("get", "/mcp/status")):
        r = getattr(requests, method)(agent.url + path, json=payload(gid, busybox(name("a"))), timeout=10)
        assert r.status_code == 401, (path, r.text)
