"""baseConfigOverrideJson is an allowlist checked on the FINAL create config, against a real agent and Docker.

Each escape attempt is sent to the four routes that build a create config (POST /tools, /tools/validate,
/mcp/groups, /mcp/validate): each is a 400 naming the key, and no container exists afterwards.
"""

from __future__ import annotations

import docker
import pytest
from dtma_testing import BUSYBOX, free_port

SLEEP = ["sleep", "3600"]
OTHER_NET = "agentopia-mcp-some-other-group"
MASKS = "MaskedPaths"

# (override, the key the 400 must name)
ESCAPES = [
    # the issue's attack: no inner HostConfig, so Docker reads the deprecated top-level fields wholesale
    ({"HostConfig": None, "Binds": ["/:/host:ro"]}, "Binds"),
    ({"HostConfig": None, "Privileged": True}, "Privileged"),
    ({"HostConfig": None, "Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}, "Mounts"),
    ({"HostConfig": None, "NetworkMode": "host"}, "NetworkMode"),
    # deprecated top-level fields with an inner HostConfig (Docker still copies Memory, CpuShares, VolumeDriver…)
    ({"Binds": ["/:/host"]}, "Binds"),
    ({"binds": ["/:/host"]}, "Binds"),
    ({"Privileged": True}, "Privileged"),
    ({"privileged": True}, "Privileged"),
    ({"Dns": ["10.0.0.1"]}, "Dns"),
    ({"VolumeDriver": "local"}, "VolumeDriver"),
    ({"Memory": 64 << 20}, "Memory"),
    ({"CpuShares": 2}, "CpuShares"),
    ({"MemorySwap": -1}, "MemorySwap"),
    ({"Cpuset": "0"}, "Cpuset"),
    ({"CapAdd": ["ALL"]}, "CapAdd"),
    ({"PidMode": "host"}, "PidMode"),
    # key case: Go's decoder folds case, and ſ (U+017F) / the Kelvin sign (U+212A) fold to s / k
    ({"HostConfig": {"privileged": True}}, "Privileged"),
    ({"HostConfig": {"PRIVILEGED": True}}, "Privileged"),
    ({"hostconfig": {"Privileged": True}}, "Privileged"),
    ({"Hoſtconfig": {"Privileged": True}}, "Privileged"),
    ({"HostConfig": {"Bindſ": ["/:/host"]}}, "Binds"),
    ({"HostConfig": {"\u212aernelMemory": 1 << 30}}, "KernelMemory"),
    ({"HostConfig": {"Capadd": ["NET_ADMIN"]}}, "CapAdd"),
    # duplicates that differ only in case (Docker takes the last; we refuse both)
    ({"HostConfig": {}, "hostconfig": {"Privileged": True}}, "HostConfig"),
    ({"HostConfig": {"Memory": 64 << 20, "memory": 128 << 20}}, "Memory"),
    ({"Cmd": SLEEP, "cmd": ["sh"]}, "Cmd"),
    # null does not open anything: a null disallowed key is still refused
    ({"HostConfig": {"Privileged": None}}, "Privileged"),
    # host paths, the Docker socket, other owners' volumes
    ({"HostConfig": {"Binds": ["/:/host"]}}, "Binds"),
    ({"HostConfig": {"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}}, "Binds"),
    ({"HostConfig": {"Binds": ["./rel:/data"]}}, "Binds"),
    ({"HostConfig": {"Binds": ["shared-data:/data"]}}, "Binds"),
    ({"HostConfig": {"Binds": [f"{OTHER_NET}-data:/data"]}}, "Binds"),
    ({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}}, "Mounts"),
    ({"HostConfig": {"Mounts": [{"type": "bind", "source": "/etc", "target": "/host"}]}}, "Mounts"),
    ({"HostConfig": {"Mounts": [{"Type": "volume", "Source": "/etc", "Target": "/host"}]}}, "Mounts"),
    ({"HostConfig": {"Mounts": [{"Type": "volume", "Source": "shared-data", "Target": "/data"}]}}, "Mounts"),
    ({"HostConfig": {"Mounts": [{"Type": "npipe", "Source": "x", "Target": "/x"}]}}, "Mounts"),
    ({"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/host", "VolumeOptions": {"DriverConfig": {
        "Name": "local", "Options": {"type": "none", "o": "bind", "device": "/etc"}}}}]}}, "Mounts"),
    ({"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/t", "BindOptions": {"Propagation": "rshared"}}]}}, "Mounts"),
    # namespaces of the host or of other containers, other groups' networks
    ({"HostConfig": {"NetworkMode": "host"}}, "NetworkMode"),
    ({"HostConfig": {"NetworkMode": "HOST"}}, "NetworkMode"),
    ({"HostConfig": {"NetworkMode": "container:dtmatest-any"}}, "NetworkMode"),
    ({"HostConfig": {"NetworkMode": OTHER_NET}}, "NetworkMode"),
    ({"NetworkingConfig": {"EndpointsConfig": {OTHER_NET: {}}}}, "NetworkingConfig"),
    ({"NetworkingConfig": {"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "172.17.0.250"}}}}},
     "NetworkingConfig"),
    ({"HostConfig": {"PidMode": "host"}}, "PidMode"),
    ({"HostConfig": {"PidMode": "container:dtmatest-any"}}, "PidMode"),
    ({"HostConfig": {"IpcMode": "host"}}, "IpcMode"),
    ({"HostConfig": {"IpcMode": "container:dtmatest-any"}}, "IpcMode"),
    ({"HostConfig": {"UTSMode": "host"}}, "UTSMode"),
    ({"HostConfig": {"UsernsMode": "host"}}, "UsernsMode"),
    ({"HostConfig": {"CgroupnsMode": "host"}}, "CgroupnsMode"),
    ({"HostConfig": {"VolumesFrom": ["dtmatest-any"]}}, "VolumesFrom"),
    ({"HostConfig": {"Links": ["dtmatest-any:db"]}}, "Links"),
    # confinement loosened
    ({"HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}}, "SecurityOpt"),
    ({"HostConfig": {"SecurityOpt": ["seccomp:unconfined"]}}, "SecurityOpt"),
    ({"HostConfig": {"SecurityOpt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']}}, "SecurityOpt"),
    ({"HostConfig": {"SecurityOpt": ["apparmor=unconfined"]}}, "SecurityOpt"),
    ({"HostConfig": {"SecurityOpt": ["apparmor:docker-default"]}}, "SecurityOpt"),
    ({"HostConfig": {"SecurityOpt": ["label=disable"]}}, "SecurityOpt"),
    ({"HostConfig": {"SecurityOpt": ["systempaths=unconfined"]}}, "SecurityOpt"),
    ({"HostConfig": {"SecurityOpt": ["no-new-privileges=false"]}}, "SecurityOpt"),
    ({"HostConfig": {"MaskedPaths": [], "ReadonlyPaths": []}}, MASKS),
    ({"HostConfig": {"ReadonlyPaths": []}}, "ReadonlyPaths"),
    ({"HostConfig": {"Runtime": "runc"}}, "Runtime"),
    ({"HostConfig": {"CgroupParent": "/"}}, "CgroupParent"),
    ({"HostConfig": {"Cgroup": "host"}}, "Cgroup"),
    ({"HostConfig": {"Isolation": "hyperv"}}, "Isolation"),
    # capabilities, devices, kernel
    ({"HostConfig": {"CapAdd": ["SYS_ADMIN"]}}, "CapAdd"),
    ({"HostConfig": {"Devices": [{"PathOnHost": "/dev/mem", "PathInContainer": "/dev/mem",
                                  "CgroupPermissions": "rwm"}]}}, "Devices"),
    ({"HostConfig": {"DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]}}, "DeviceRequests"),
    ({"HostConfig": {"DeviceCgroupRules": ["c *:* rwm"]}}, "DeviceCgroupRules"),
    ({"HostConfig": {"Sysctls": {"net.ipv4.ip_forward": "1"}}}, "Sysctls"),
    ({"HostConfig": {"OomKillDisable": True}}, "OomKillDisable"),
    ({"HostConfig": {"OomScoreAdj": -1000}}, "OomScoreAdj"),
    ({"HostConfig": {"GroupAdd": ["0"]}}, "GroupAdd"),
    ({"HostConfig": {"Ulimits": [{"Name": "memlock", "Soft": -1, "Hard": -1}]}}, "Ulimits"),
    ({"HostConfig": {"ContainerIDFile": "/etc/cron.d/x"}}, "ContainerIDFile"),
    ({"HostConfig": {"StorageOpt": {"size": "1G"}}}, "StorageOpt"),
    # logs sent off the host
    ({"HostConfig": {"LogConfig": {"Type": "syslog", "Config": {"syslog-address": "udp://10.0.0.1:514"}}}}, "LogConfig"),
    ({"HostConfig": {"LogConfig": {"Type": "gelf", "Config": {"gelf-address": "udp://10.0.0.1:12201"}}}}, "LogConfig"),
    ({"HostConfig": {"LogConfig": {"Type": "fluentd"}}}, "LogConfig"),
    ({"HostConfig": {"logconfig": {"type": "awslogs"}}}, "LogConfig"),
    # ports and publishing
    ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "22"}]}}}, "PortBindings"),
    ({"HostConfig": {"PublishAllPorts": True}}, "PublishAllPorts"),
    ({"HostConfig": {"ExtraHosts": ["host.docker.internal:host-gateway"]}}, "ExtraHosts"),
    # the agent's own labels, unknown keys, wrong shapes
    ({"Labels": {"agentopia.group_id": "someone-elses"}}, "Labels"),
    ({"Volumes": {"/data": {}}}, "Volumes"),
    ({"NoSuchKey": 1}, "NoSuchKey"),
    ({"HostConfig": "privileged"}, "HostConfig"),
]


@pytest.fixture
def names(name, docker_api):
    """A tool name, a group id and a server name; afterwards nothing with these names may exist."""
    made = {"tool": name("cc-tool"), "group": name("cc-grp"), "server": name("cc-srv"), "safe": name("cc-safe")}
    yield made
    for n in (made["tool"], made["server"], made["safe"]):
        try:
            docker_api.remove_container(n, force=True, v=True)
        except docker.errors.NotFound:
            pass


def _named(docker_api, name: str) -> list:
    return docker_api.containers(all=True, filters={"name": f"^/{name}$"})


@pytest.mark.parametrize("override, key", ESCAPES, ids=[f"{i}-{case[1]}" for i, case in enumerate(ESCAPES)])
def test_escape_attempt_is_400_naming_the_key_and_creates_nothing(agent, docker_api, names, override, key):
    tool = {"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": names["tool"], "accountToolInstanceId": "acct-cc",
            "baseConfigOverrideJson": {"Cmd": SLEEP, **override}}
    group = {"groupId": names["group"], "servers": [
        {"instanceNameOnToolbox": names["safe"], "dockerImageUrl": BUSYBOX, "baseConfigOverrideJson": {"Cmd": SLEEP}},
        {"instanceNameOnToolbox": names["server"], "dockerImageUrl": BUSYBOX,
         "baseConfigOverrideJson": {"Cmd": SLEEP, **override}}]}
    for route, body, field in (("/tools", tool, "baseConfigOverrideJson."),
                               ("/tools/validate", tool, "baseConfigOverrideJson."),
                               ("/mcp/validate", group, f"servers[{names['server']}].baseConfigOverrideJson."),
                               ("/mcp/groups", group, f"servers[{names['server']}].baseConfigOverrideJson.")):
        r = agent.post(route, json=body)
        assert r.status_code == 400, (route, r.text)
        out = r.json()
        assert out["success"] is False and out["error"] in ("unsafe override", "invalid override"), out
        assert out["field"].startswith(field) and key in out["field"], (route, out)
        assert key in out["message"], (route, out)
    for n in (names["tool"], names["server"], names["safe"]):
        assert _named(docker_api, n) == []
    assert docker_api.containers(all=True, filters={"label": f"agentopia.group_id={names['group']}"}) == []


def test_the_issues_exact_attack_creates_nothing(agent, docker_api, names):
    body = {"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": names["tool"], "accountToolInstanceId": "x",
            "baseConfigOverrideJson": {"HostConfig": None, "Binds": ["/:/host:ro"], "Cmd": ["cat", "/host/etc/shadow"]}}
    before = len(docker_api.containers(all=True))
    r = agent.post("/tools", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "baseConfigOverrideJson.Binds"
    assert _named(docker_api, names["tool"]) == []
    # other engineers' tests share this Docker: only our name is asserted exactly, the total loosely
    assert len(docker_api.containers(all=True)) <= before + 2


def test_override_nested_too_deeply_is_422_naming_the_field(agent, docker_api, names):
    deep: dict = {}
    node = deep
    for _attempt in range(40):
        node["a"] = {}
        node = node["a"]
    body = {"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": names["tool"], "accountToolInstanceId": "x",
            "baseConfigOverrideJson": {"Labels": deep}}
    r = agent.post("/tools", json=body)
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["fields"]] == ["baseConfigOverrideJson"]
    assert "deeper than 20" in r.json()["message"]
    # and as a JSON string, nested beyond what Python's parser recurses into
    body["baseConfigOverrideJson"] = "[" * 100000 + "]" * 100000
    r = agent.post("/tools", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == "baseConfigOverrideJson"
    assert "RecursionError" not in agent.log()


def test_allowed_keys_reach_docker(agent, docker_api, names):
    n, port = names["tool"], free_port()
    volume = f"agentopia-tool-{n}-data"
    override = {
        "Cmd": ["sh", "-c", "echo ready; sleep 3600"], "Env": ["DTMATEST_A=1"], "WorkingDir": "/tmp",
        "Labels": {"dtmatest.kept": "yes"}, "ExposedPorts": {"8080/tcp": {}}, "User": "1000:1000",
        "StopSignal": "SIGINT", "StopTimeout": 3, "Hostname": "cc-host",
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 2},
        "Tty": False, "OpenStdin": True,
        "hostconfig": {  # folded to HostConfig and sent canonically
            "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]},
            "Memory": 64 << 20, "MemorySwap": 128 << 20, "MemoryReservation": 32 << 20, "NanoCpus": 500_000_000,
            "CpuShares": 512, "PidsLimit": 64, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
            "Init": True, "ReadonlyRootfs": True, "Tmpfs": {"/run": "size=1m"}, "ShmSize": 8 << 20,
            "LogConfig": {"Type": "local", "Config": {"max-size": "1m"}}, "NetworkMode": "bridge",
            "Mounts": [{"Type": "volume", "Source": volume, "Target": "/data"}, {"Type": "tmpfs", "Target": "/scratch"}],
            "CapDrop": ["NET_RAW"], "SecurityOpt": ["no-new-privileges"],
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]}}
    try:
        r = agent.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": n,
                                       "accountToolInstanceId": "acct-cc", "baseConfigOverrideJson": override})
        assert r.status_code == 201, r.text
        info = docker_api.inspect_container(n)
        config, host = info["Config"], info["HostConfig"]
        assert config["Cmd"][0] == "sh" and "DTMATEST_A=1" in config["Env"] and config["WorkingDir"] == "/tmp"
        assert config["Labels"]["dtmatest.kept"] == "yes" and config["Labels"]["agentopia.managed_by"] == "dtma"
        assert config["User"] == "1000:1000" and config["StopSignal"] == "SIGINT" and config["StopTimeout"] == 3
        assert config["Hostname"] == "cc-host" and config["OpenStdin"] is True and config["Healthcheck"]["Retries"] == 2
        assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        assert (host["Memory"], host["MemorySwap"], host["MemoryReservation"]) == (64 << 20, 128 << 20, 32 << 20)
        assert (host["NanoCpus"], host["CpuShares"], host["PidsLimit"]) == (500_000_000, 512, 64)
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert host["Init"] is True and host["ReadonlyRootfs"] is True and host["Tmpfs"] == {"/run": "size=1m"}
        assert host["ShmSize"] == 8 << 20 and host["LogConfig"]["Type"] == "local" and host["NetworkMode"] == "bridge"
        assert host["CapDrop"] == ["NET_RAW"] and host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
        assert {(m["Type"], m.get("Name"), m["Destination"]) for m in info["Mounts"]} >= {("volume", volume, "/data")}
        assert info["State"]["Running"] is True
    finally:
        try:
            docker_api.remove_container(n, force=True, v=True)
        except docker.errors.NotFound:
            pass
        try:
            docker_api.remove_volume(volume, force=True)
        except docker.errors.APIError:
            pass


def test_group_may_use_its_own_network_and_volumes(agent, docker_api, names, groups):
    gid, server = names["group"], names["server"]
    groups.append(gid)
    volume = f"agentopia-mcp-{gid}-cache"
    network = f"agentopia-mcp-{gid}"
    body = {"groupId": gid, "options": {"sharedNetworking": True}, "servers": [{
        "instanceNameOnToolbox": server, "dockerImageUrl": BUSYBOX,
        "baseConfigOverrideJson": {"Cmd": SLEEP, "HostConfig": {"NetworkMode": network,
                                                                "Binds": [f"{volume}:/cache:ro"]},
                                   "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": ["cc-alias"]}}}}}]}
    try:
        r = agent.post("/mcp/groups", json=body)
        assert r.status_code == 201, r.text
        info = docker_api.inspect_container(server)
        assert info["HostConfig"]["NetworkMode"] == network
        assert "cc-alias" in info["NetworkSettings"]["Networks"][network]["Aliases"]
        assert [(m["Name"], m["Destination"], m["RW"]) for m in info["Mounts"]] == [(volume, "/cache", False)]
        # the same volume name is another group's to nobody else: a tool cannot mount it
        r = agent.post("/tools/validate", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": names["tool"],
                                                "accountToolInstanceId": "x",
                                                "baseConfigOverrideJson": {"HostConfig": {"Binds": [f"{volume}:/c"]}}})
        assert r.status_code == 400 and "Binds" in r.json()["field"], r.text
    finally:
        agent.delete(f"/mcp/groups/{gid}", params={"forceRemove": "true"})
        try:
            docker_api.remove_volume(volume, force=True)
        except docker.errors.APIError:
            pass


def test_docker_refusing_an_allowed_value_is_400_not_502(agent, docker_api, names):
    """Docker checks values further (a memory limit below its 6 MB minimum): the caller's error, a 400."""
    r = agent.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": names["tool"],
                                   "accountToolInstanceId": "x",
                                   "baseConfigOverrideJson": {"Cmd": SLEEP, "HostConfig": {"Memory": 1024}}})
    assert r.status_code == 400, r.text
    assert "Minimum memory" in r.json()["message"] or "memory" in r.json()["message"].lower()
    assert _named(docker_api, names["tool"]) == []
