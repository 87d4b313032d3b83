"""POST /tools and the tool lifecycle against a real agent and a real Docker engine."""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime, timedelta, timezone

import docker
import pytest
from dtma_testing import BUSYBOX, free_port, wait_until

SLEEP = {"Cmd": ["sleep", "3600"]}
# an image reference whose registry is a closed loopback port: absent locally, and a pull fails at once
# without traffic leaving the host
MISSING_IMAGE = "127.0.0.1:1/dtmatest/does-not-exist:1"


def body(name: str, override=None, image: str = BUSYBOX, account: str = "acct-1") -> dict:
    b = {"dockerImageUrl": image, "instanceNameOnToolbox": name, "accountToolInstanceId": account}
    override = SLEEP if override is None else override
    if override:
        b["baseConfigOverrideJson"] = override
    return b


def deploy(agent, cleanup, name: str, override=None, **kw):
    cleanup.append(name)
    return agent.post("/tools", json=body(name, override, **kw))


def containers_named(docker_api, name: str) -> list[dict]:
    return docker_api.containers(all=True, filters={"name": f"^/{name}$"})


def httpd_on(port: int) -> dict:
    return {"Cmd": ["httpd", "-f", "-p", "8080"], "ExposedPorts": {"8080/tcp": {}},
            "HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": str(port)}]}}}


def field_names(response) -> list[str]:
    data = response.json()
    return [f["field"] for f in data.get("fields", [])] + ([data["field"]] if data.get("field") else [])


# --- deploy ---------------------------------------------------------------------------------------------

def test_deploy_happy_path_creates_a_labelled_running_container(agent, docker_api, cleanup, name):
    n = name("tool")
    r = deploy(agent, cleanup, n, account="acct-happy")
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["success"] is True and out["timestamp"]
    data = out["data"]
    assert {"container_id", "instance_name_on_toolbox", "account_tool_instance_id", "image", "ports", "state"} <= set(data)
    assert data["instance_name_on_toolbox"] == n
    assert data["account_tool_instance_id"] == "acct-happy"
    assert data["image"] == BUSYBOX
    assert data["ports"] == []
    assert data["state"] == "running"

    inspected = docker_api.inspect_container(n)
    assert inspected["Id"] == data["container_id"]
    assert inspected["State"]["Running"] is True
    labels = inspected["Config"]["Labels"]
    assert labels["agentopia.managed_by"] == "dtma"
    assert labels["agentopia.kind"] == "tool"
    assert labels["agentopia.account_tool_instance_id"] == "acct-happy"
    assert labels["agentopia.instance_name"] == n
    assert inspected["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert inspected["Config"]["Cmd"] == ["sleep", "3600"]


def test_deploy_reports_published_ports(agent, docker_api, cleanup, name):
    n, port = name("ports"), free_port()
    r = deploy(agent, cleanup, n, override=httpd_on(port))
    assert r.status_code == 201, r.text
    ports = r.json()["data"]["ports"]
    assert {"container_port": 8080, "protocol": "tcp", "host_port": port}.items() <= ports[0].items()


def test_override_as_json_string_works(agent, docker_api, cleanup, name):
    n = name("jsonstr")
    r = deploy(agent, cleanup, n, override=json.dumps({"Cmd": ["sleep", "3601"], "Env": ["DTMATEST=1"]}))
    assert r.status_code == 201, r.text
    config = docker_api.inspect_container(n)["Config"]
    assert config["Cmd"] == ["sleep", "3601"]
    assert "DTMATEST=1" in config["Env"]


@pytest.mark.parametrize("labels_key", ["Labels", "labels", "Labelſ"])  # the last folds to Labels in Go's JSON decoder
def test_override_labels_are_kept_beside_the_agents(agent, docker_api, cleanup, name, labels_key):
    n = name("labels")
    r = deploy(agent, cleanup, n, override={**SLEEP, labels_key: {"dtmatest.extra": "kept"}}, account="acct-real")
    assert r.status_code == 201, r.text
    labels = docker_api.inspect_container(n)["Config"]["Labels"]
    assert labels["agentopia.managed_by"] == "dtma"
    assert labels["agentopia.kind"] == "tool"
    assert labels["agentopia.account_tool_instance_id"] == "acct-real"
    assert labels["dtmatest.extra"] == "kept"


@pytest.mark.parametrize("labels_key", ["Labels", "labels", "Labelſ"])
def test_override_cannot_set_the_agents_labels(agent, docker_api, cleanup, name, labels_key):
    """agentopia.* labels are the agent's state (a tool must not claim a group): refused, not silently overwritten."""
    n = name("labels")
    override = {**SLEEP, labels_key: {"agentopia.managed_by": "someone-else", "dtmatest.extra": "kept"}}
    r = deploy(agent, cleanup, n, override=override, account="acct-real")
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "baseConfigOverrideJson.Labels.agentopia.managed_by"
    assert containers_named(docker_api, n) == []


def test_name_clash_with_an_unmanaged_container_is_409_and_leaves_it_alone(agent, docker_api, cleanup, name):
    n = name("clash")
    cleanup.append(n)
    other = docker_api.create_container(BUSYBOX, command=["sleep", "3600"], name=n)["Id"]
    docker_api.start(other)
    r = agent.post("/tools", json=body(n))
    assert r.status_code == 409, r.text
    assert r.json()["success"] is False
    assert "instanceNameOnToolbox" in field_names(r)
    found = containers_named(docker_api, n)
    assert [c["Id"] for c in found] == [other]
    inspected = docker_api.inspect_container(other)
    assert inspected["State"]["Running"] is True
    assert "agentopia.managed_by" not in (inspected["Config"]["Labels"] or {})


def test_name_clash_with_a_managed_tool_is_409(agent, docker_api, cleanup, name):
    n = name("clash2")
    first = deploy(agent, cleanup, n)
    assert first.status_code == 201, first.text
    again = agent.post("/tools", json=body(n, account="acct-other"))
    assert again.status_code == 409, again.text
    assert [c["Id"] for c in containers_named(docker_api, n)] == [first.json()["data"]["container_id"]]


def test_host_port_clash_between_tools_is_409_and_leaves_nothing(agent, docker_api, cleanup, name):
    port = free_port()
    a, b = name("porta"), name("portb")
    first = deploy(agent, cleanup, a, override=httpd_on(port))
    assert first.status_code == 201, first.text
    second = deploy(agent, cleanup, b, override=httpd_on(port))
    assert second.status_code == 409, second.text
    assert second.json()["success"] is False
    assert second.json()["field"] == "baseConfigOverrideJson.HostConfig.PortBindings"
    assert str(port) in second.json()["message"]
    assert containers_named(docker_api, b) == []
    assert docker_api.inspect_container(a)["State"]["Running"] is True


def test_host_port_held_by_a_host_socket_is_409(agent, docker_api, cleanup, name):
    with socket.socket() as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        n = name("hostsock")
        r = deploy(agent, cleanup, n, override=httpd_on(port))
        assert r.status_code == 409, r.text
        assert r.json()["field"] == "baseConfigOverrideJson.HostConfig.PortBindings"
        assert containers_named(docker_api, n) == []


def test_missing_image_is_422_naming_the_field_and_creates_nothing(agent, docker_api, cleanup, name):
    n = name("noimage")
    r = deploy(agent, cleanup, n, image=MISSING_IMAGE)
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["error"] == "image unavailable"
    assert "dockerImageUrl" in field_names(r) and "dockerImageUrl" in out["message"]
    assert containers_named(docker_api, n) == []


# --- validation -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, field", [
    (lambda b: b.pop("dockerImageUrl"), "dockerImageUrl"),
    (lambda b: b.pop("instanceNameOnToolbox"), "instanceNameOnToolbox"),
    (lambda b: b.pop("accountToolInstanceId"), "accountToolInstanceId"),
    (lambda b: b.update(instanceNameOnToolbox="bad name/x"), "instanceNameOnToolbox"),
    (lambda b: b.update(baseConfigOverrideJson=[1, 2]), "baseConfigOverrideJson"),
    (lambda b: b.update(baseConfigOverrideJson=42), "baseConfigOverrideJson"),
    (lambda b: b.update(baseConfigOverrideJson='"just a string"'), "baseConfigOverrideJson"),
    (lambda b: b.update(baseConfigOverrideJson="{not json"), "baseConfigOverrideJson"),
], ids=["no-image", "no-name", "no-account", "bad-name", "override-list", "override-number",
        "override-json-string-not-object", "override-invalid-json"])
def test_invalid_body_is_422_naming_the_field(agent, docker_api, cleanup, name, change, field):
    n = name("invalid")
    b = body(n)
    change(b)
    cleanup.append(n)
    r = agent.post("/tools", json=b)
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["success"] is False
    assert field in field_names(r), out
    assert field in out["message"]
    assert containers_named(docker_api, n) == []


def test_malformed_json_body_is_422_naming_the_body(agent):
    r = agent.session.post(agent.url + "/tools", data="{not json", headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["fields"]] == ["body"]


UNSAFE = [
    ({"HostConfig": {"Privileged": True}}, "Privileged"),
    ({"hostconfig": {"privileged": True}}, "Privileged"),
    ({"Privileged": True}, "Privileged"),
    ({"HostConfig": {"CapAdd": ["SYS_ADMIN"]}}, "CapAdd"),
    ({"HostConfig": {"Binds": ["/:/host"]}}, "Binds"),
    ({"HostConfig": {"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}}, "Binds"),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}}, "Mounts"),
    ({"HostConfig": {"Mounts": [{"type": "volume", "source": "/var/run/docker.sock", "target": "/s"}]}}, "Mounts"),
    ({"HostConfig": {"NetworkMode": "host"}}, "NetworkMode"),
    ({"HostConfig": {"PidMode": "host"}}, "PidMode"),
    ({"HostConfig": {"IpcMode": "host"}}, "IpcMode"),
    ({"HostConfig": {"UsernsMode": "host"}}, "UsernsMode"),
    ({"HostConfig": {"UTSMode": "host"}}, "UTSMode"),
    ({"HostConfig": {"Devices": [{"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem",
                                  "CgroupPermissions": "rwm"}]}}, "Devices"),
    ({"HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}}, "SecurityOpt"),
    ({"HostConfig": {"SecurityOpt": ["apparmor:unconfined"]}}, "SecurityOpt"),
    ({"HostConfig": {"VolumesFrom": ["some-other-container"]}}, "VolumesFrom"),
    # Docker decodes keys like Go's encoding/json: `ſ` (U+017F) folds to `s`, so these reach Docker as
    # HostConfig / Binds / Mounts
    ({"Hoſtconfig": {"Privileged": True}}, "Privileged"),
    ({"HostConfig": {"Bindſ": ["/:/host"]}}, "Binds"),
    ({"HostConfig": {"Mountſ": [{"Type": "bind", "Source": "/", "Target": "/host"}]}}, "Mounts"),
    # a "named volume" whose local-driver options bind-mount a host path
    ({"HostConfig": {"Mounts": [{"Type": "volume", "Source": "dtmatest-drvvol", "Target": "/host",
                                 "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {
                                     "type": "none", "o": "bind", "device": "/etc"}}}}]}}, "Mounts"),
    # what `--security-opt systempaths=unconfined` sends: the /proc masks removed
    ({"HostConfig": {"MaskedPaths": [], "ReadonlyPaths": []}}, "MaskedPaths"),
    ({"HostConfig": {"ReadonlyPaths": []}}, "ReadonlyPaths"),
]


@pytest.mark.parametrize("override, key", UNSAFE, ids=[f"{i}-{case[1]}" for i, case in enumerate(UNSAFE)])
def test_unsafe_override_is_400_naming_the_key(agent, docker_api, cleanup, name, override, key):
    n = name("unsafe")
    r = deploy(agent, cleanup, n, override={**SLEEP, **override})
    assert r.status_code == 400, r.text
    out = r.json()
    assert out["success"] is False
    assert key in out["message"] and key in out.get("field", "")
    assert containers_named(docker_api, n) == []


def test_keys_differing_only_in_case_are_refused(agent, docker_api, cleanup, name):
    n = name("ambig")
    r = deploy(agent, cleanup, n, override={"HostConfig": {}, "hostconfig": {"Privileged": True}})
    assert r.status_code == 400, r.text
    assert containers_named(docker_api, n) == []


def test_named_volume_bind_is_allowed(agent, docker_api, cleanup, name):
    n = name("vol")
    volume = f"agentopia-tool-{n}-data"  # a tool's own volumes are agentopia-tool-<name>-<letters and digits>
    try:
        r = deploy(agent, cleanup, n, override={**SLEEP, "HostConfig": {"Binds": [f"{volume}:/data"]}})
        assert r.status_code == 201, r.text
        mounts = docker_api.inspect_container(n)["Mounts"]
        assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [("volume", volume, "/data")]
    finally:
        try:
            docker_api.remove_container(n, force=True, v=True)
        except docker.errors.NotFound:
            pass
        try:
            docker_api.remove_volume(volume)
        except docker.errors.NotFound:
            pass


# --- lifecycle ------------------------------------------------------------------------------------------

def test_stop_start_restart(agent, docker_api, cleanup, name):
    n = name("life")
    assert deploy(agent, cleanup, n).status_code == 201

    r = agent.post(f"/tools/{n}/stop?timeout=1")
    assert r.status_code == 200, r.text
    assert r.json()["changed"] is True and r.json()["data"]["state"] == "exited"
    assert docker_api.inspect_container(n)["State"]["Status"] == "exited"

    r = agent.post(f"/tools/{n}/stop?timeout=1")
    assert r.status_code == 200, r.text
    assert r.json()["changed"] is False and r.json()["data"]["state"] == "exited"

    r = agent.post(f"/tools/{n}/start")
    assert r.status_code == 200, r.text
    assert r.json()["changed"] is True and r.json()["data"]["state"] == "running"
    started_at = docker_api.inspect_container(n)["State"]["StartedAt"]

    r = agent.post(f"/tools/{n}/start")
    assert r.status_code == 200 and r.json()["changed"] is False

    r = agent.post(f"/tools/{n}/restart?timeout=1")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["state"] == "running"
    state = docker_api.inspect_container(n)["State"]
    assert state["Running"] is True and state["StartedAt"] != started_at


def test_unknown_action_is_422(agent, cleanup, name):
    n = name("action")
    assert deploy(agent, cleanup, n).status_code == 201
    assert agent.post(f"/tools/{n}/kill").status_code == 422


@pytest.mark.parametrize("call", ["start", "stop", "restart", "logs", "delete"])
def test_unknown_tool_is_404(agent, name, call):
    n = name("ghost")
    r = _call(agent, n, call)
    assert r.status_code == 404, r.text
    assert r.json()["success"] is False


def _call(agent, n, call):
    if call == "logs":
        return agent.get(f"/tools/{n}/logs")
    if call == "delete":
        return agent.delete(f"/tools/{n}?timeout=1")
    return agent.post(f"/tools/{n}/{call}?timeout=1")


def test_unmanaged_container_is_never_touched(agent, docker_api, cleanup, name):
    n = name("unmanaged")
    cleanup.append(n)
    cid = docker_api.create_container(BUSYBOX, command=["sleep", "3600"], name=n)["Id"]
    docker_api.start(cid)
    started_at = docker_api.inspect_container(cid)["State"]["StartedAt"]
    for call in ("stop", "restart", "start", "logs", "delete"):
        r = _call(agent, n, call)
        assert r.status_code == 404, (call, r.text)
    state = docker_api.inspect_container(cid)["State"]
    assert state["Running"] is True and state["StartedAt"] == started_at
    assert n not in [t["instance_name_on_toolbox"] for t in agent.get("/tools/status").json()["data"]]


def test_logs_tail_and_since(agent, docker_api, cleanup, name):
    n = name("logs")
    r = deploy(agent, cleanup, n, override={"Cmd": ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 3600"]})
    assert r.status_code == 201, r.text

    def all_lines():
        got = agent.get(f"/tools/{n}/logs")
        return got.json()["data"]["lines"] if got.status_code == 200 and len(got.json()["data"]["lines"]) >= 5 else None

    assert wait_until(all_lines, 10) == ["line1", "line2", "line3", "line4", "line5"]

    r = agent.get(f"/tools/{n}/logs", params={"tail": 2})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["lines"] == ["line4", "line5"]
    assert r.json()["data"]["count"] == 2

    future = int(time.time()) + 3600
    for since in (str(future), (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")):
        r = agent.get(f"/tools/{n}/logs", params={"since": since})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["lines"] == []

    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    r = agent.get(f"/tools/{n}/logs", params={"since": past, "tail": 3})
    assert r.status_code == 200 and r.json()["data"]["lines"] == ["line3", "line4", "line5"]


@pytest.mark.parametrize("since", ["0", "1960-01-01T00:00:00Z", "99999999999999999999"])
def test_logs_since_edge_values_are_not_server_errors(agent, cleanup, name, since):
    # "0" and pre-epoch times mean "from the beginning"; a far-future value means "nothing yet"
    n = name("since")
    r = deploy(agent, cleanup, n, override={"Cmd": ["sh", "-c", "echo hello; sleep 3600"]})
    assert r.status_code == 201, r.text
    assert wait_until(lambda: agent.get(f"/tools/{n}/logs").json()["data"]["lines"], 10) == ["hello"]
    r = agent.get(f"/tools/{n}/logs", params={"since": since})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["lines"] == ([] if since.startswith("9999") else ["hello"])


@pytest.mark.parametrize("params, field", [
    ({"tail": 0}, "tail"), ({"tail": "abc"}, "tail"), ({"tail": 10001}, "tail"), ({"tail": -1}, "tail"),
    ({"since": "garbage"}, "since"), ({"since": "2024-13-45"}, "since"),
])
def test_logs_bad_query_is_422(agent, cleanup, name, params, field):
    n = name("logq")
    assert deploy(agent, cleanup, n).status_code == 201
    r = agent.get(f"/tools/{n}/logs", params=params)
    assert r.status_code == 422, r.text
    assert field in field_names(r) and field in r.json()["message"]


def test_tools_status_lists_managed_tools_with_state(agent, docker_api, cleanup, name):
    running, stopped = name("st-run"), name("st-stop")
    assert deploy(agent, cleanup, running, account="acct-run").status_code == 201
    assert deploy(agent, cleanup, stopped, account="acct-stop").status_code == 201
    assert agent.post(f"/tools/{stopped}/stop?timeout=1").status_code == 200
    r = agent.get("/tools/status")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["success"] is True and out["count"] == len(out["data"])
    by_name = {t["instance_name_on_toolbox"]: t for t in out["data"]}
    assert by_name[running]["state"] == "running" and by_name[running]["account_tool_instance_id"] == "acct-run"
    assert by_name[stopped]["state"] == "exited" and by_name[stopped]["account_tool_instance_id"] == "acct-stop"


def test_delete_removes_the_container_then_404(agent, docker_api, cleanup, name):
    n = name("del")
    r = deploy(agent, cleanup, n)
    assert r.status_code == 201
    r = agent.delete(f"/tools/{n}?timeout=1")
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    assert containers_named(docker_api, n) == []
    assert agent.delete(f"/tools/{n}?timeout=1").status_code == 404
    assert n not in [t["instance_name_on_toolbox"] for t in agent.get("/tools/status").json()["data"]]
