"""The filtered Docker API for executed commands (dtma_agent.docker_filter), against the real engine with the
real docker CLI: allowed reads answer what the daemon answers (inspect redacted), lifecycle works on the agent's
containers only, everything else is 403 with a reason and changes nothing, odd requests are refused.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import docker
import pytest

from dtma_agent import docker_state
from dtma_agent.docker_filter import DockerFilter
from dtma_agent.policy import docker_access
from dtma_agent.policy.docker_access import MANAGED_LIFECYCLE, READ, cli_subcommand_kind
from dtma_testing import BUSYBOX, PREFIX, SESSION, wait_until

DOCKER = "/usr/bin/docker"
REPO = Path(__file__).resolve().parents[2]
SECRET = f"hunter2-{SESSION}"
LABEL = f"dtmatest.session={SESSION}"  # prune tests only ever match this label


class LoopThread:
    """The filter runs on an asyncio loop of its own thread; the tests drive it from the main thread."""

    def __init__(self, new_loop=asyncio.new_event_loop):
        self.loop = new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 15):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Endpoint:
    def __init__(self, loop: LoopThread, upstream: str = "/var/run/docker.sock", **options):
        self.loop = loop
        self.dir = tempfile.mkdtemp(prefix="dtf-", dir="/tmp")  # short: unix socket paths are limited to 107 bytes
        os.chmod(self.dir, 0o755)
        self.path = os.path.join(self.dir, "docker.sock")
        self.decisions: list[dict] = []
        self.endpoint = loop.run(DockerFilter(upstream).open(self.path, on_decision=self.decisions.append, **options))

    def docker(self, *args, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        return cli(f"unix://{self.path}", *args, timeout=timeout, home=self.dir, **kw)

    def http(self) -> http.client.HTTPConnection:
        return UnixHTTPConnection(self.path)

    def close(self):
        self.loop.run(self.endpoint.close())
        shutil.rmtree(self.dir, ignore_errors=True)


def cli(host: str, *args, timeout: float = 30, home: str = "/tmp", **kw) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": home, "DOCKER_HOST": host, "DOCKER_BUILDKIT": "0"}
    return subprocess.run([DOCKER, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False, **kw)


def direct(*args) -> subprocess.CompletedProcess:
    return cli("unix:///var/run/docker.sock", *args)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(self.unix_path)


def raw_exchange(path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def request(ep: Endpoint, method: str, target: str, body: bytes | None = None, headers: dict | None = None):
    conn = ep.http()
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module", autouse=True)
def _no_leftovers(docker_api):
    """Should the filter let a denied call through, what it made is removed (and the test has failed)."""
    yield
    for c in docker_api.containers(all=True, filters={"name": PREFIX}):
        docker_api.remove_container(c["Id"], force=True)
    for tag in _image_tags(docker_api):
        if tag.startswith(PREFIX):
            docker_api.remove_image(tag)
    for volume in docker_api.volumes()["Volumes"] or []:
        if volume["Name"].startswith(PREFIX):
            docker_api.remove_volume(volume["Name"])
    for network in docker_api.networks(names=[PREFIX]):
        docker_api.remove_network(network["Id"])


@pytest.fixture(scope="module")
def loop():
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture(scope="module")
def ep(loop, docker_api):
    e = Endpoint(loop)
    yield e
    e.close()


def _container(api, tag: str, command: list, managed: bool) -> dict:
    name = f"{PREFIX}df-{tag}"
    labels = {"dtmatest.session": SESSION}
    if managed:
        labels[docker_state.MANAGED_BY] = docker_state.MANAGED_VALUE
    host_config = api.create_host_config(init=True, log_config={"type": "json-file", "config": {"max-size": "10m"}})
    api.create_container(BUSYBOX, command, name=name, labels=labels, environment={"SECRET_TOKEN": SECRET},
                         host_config=host_config)
    api.start(name)
    return api.inspect_container(name)


@pytest.fixture(scope="module")
def managed(docker_api):
    c = _container(docker_api, "managed", ["sh", "-c", "for i in 1 2 3 4 5 6 7; do echo line $i; done; exec sleep 300"],
                   managed=True)
    wait_until(lambda: "line 7" in docker_api.logs(c["Id"]).decode(), 5, 0.05)
    yield c
    docker_api.remove_container(c["Id"], force=True)


@pytest.fixture(scope="module")
def unmanaged(docker_api):
    c = _container(docker_api, "unmanaged", ["sleep", "300"], managed=False)
    yield c
    docker_api.remove_container(c["Id"], force=True)


def state(api, container) -> dict:
    return api.inspect_container(container["Id"])["State"]


# --- the shared table -------------------------------------------------------------------------------------------------
def test_the_agent_reads_the_collection_table_through_a_file_symlink():
    link = REPO / "agent" / "src" / "dtma_agent" / "policy" / "docker_access.py"
    assert link.is_symlink() and os.readlink(link) == "../../../../plugins/module_utils/_docker_access.py"
    assert link.resolve() == REPO / "plugins" / "module_utils" / "_docker_access.py"
    assert docker_access.MANAGED_LABEL == (docker_state.MANAGED_BY, docker_state.MANAGED_VALUE)


@pytest.mark.parametrize("words, kind", [
    (["ps", "-a"], READ), (["container", "ls", "--format", "{{.Names}}"], READ), (["logs", "-f", "x"], READ),
    (["inspect", "x"], READ), (["image", "inspect", "x"], READ), (["stats", "--no-stream"], READ),
    (["top", "x"], READ), (["version"], READ), (["info"], READ), (["images"], READ), (["events"], READ),
    (["--log-level", "debug", "ps"], READ), (["restart", "x"], MANAGED_LIFECYCLE),
    (["container", "stop", "-t", "1", "x"], MANAGED_LIFECYCLE), (["start", "x"], MANAGED_LIFECYCLE),
    (["run", "busybox"], None), (["container", "create", "busybox"], None), (["exec", "x", "sh"], None),
    (["cp", "a", "x:/b"], None), (["rm", "x"], None), (["kill", "x"], None), (["volume", "create"], None),
    (["network", "ls"], None), (["build", "."], None), (["pull", "x"], None), (["system", "prune"], None),
    (["inspect", "--type", "network", "x"], None), (["-H", "tcp://10.0.0.1:2375", "ps"], None),
    (["--context", "other", "ps"], None), (["compose", "up"], None), (["swarm", "init"], None),
    (["frobnicate"], None),
])
def test_cli_subcommands_map_to_the_kinds_of_the_table(words, kind):
    got, reason = cli_subcommand_kind(words)
    assert got == kind, reason
    assert reason.startswith("docker ") and (kind or "not allowed" in reason)


def test_cli_denials_give_the_same_reason_as_the_api():
    _kind, reason = cli_subcommand_kind(["run", "--rm", "busybox"])
    assert reason == docker_access.api_operation("POST", "/containers/create")[3]
    assert "containers are created through the agent's API" in reason


def test_redaction_replaces_values_and_keeps_names():
    doc = {"Config": {"Env": ["A=1", "B=x=y", "C"], "Labels": {"k": "v"}},
           "HostConfig": {"LogConfig": {"Type": "splunk", "Config": {"splunk-token": "t0k"}}}}
    docker_access.redact("container", doc)
    assert doc == {"Config": {"Env": ["A=<redacted>", "B=<redacted>", "C=<redacted>"], "Labels": {"k": "v"}},
                   "HostConfig": {"LogConfig": {"Type": "splunk", "Config": {"splunk-token": "<redacted>"}}}}
    assert docker_access.redact("image", {"Config": None, "ContainerConfig": {"Env": ["X=2"]}}) == \
        {"Config": None, "ContainerConfig": {"Env": ["X=<redacted>"]}}


# --- allowed reads answer what the daemon answers ----------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["ps", "-a", "--no-trunc", "--filter", f"name={PREFIX}df-", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.Labels}}"],
    ["ps", "--filter", f"name={PREFIX}df-"],
    ["version", "--format", "{{json .Server}}"],
    ["info", "--format", "{{.ServerVersion}} {{.Driver}} {{.ID}} {{.CgroupVersion}}"],
    ["images", "--no-trunc", BUSYBOX],
    ["logs", "--tail", "5", "{managed}"],
    ["top", "{managed}", "-o", "pid,ppid,args"],
    ["container", "ls", "-a", "-q", "--filter", f"name={PREFIX}df-"],
])
def test_allowed_reads_answer_what_docker_answers(ep, managed, unmanaged, args):
    args = [a.format(managed=managed["Name"].lstrip("/")) for a in args]
    # `docker ps` prints times relative to now ("Less than a second ago", "1 second ago"): the two calls can straddle
    # a change of that text, so they are asked again; a difference the filter makes stays on every attempt
    for _attempt in range(3):
        via, plain = ep.docker(*args), direct(*args)
        if (via.stdout, via.stderr) == (plain.stdout, plain.stderr):
            break
    assert via.returncode == 0, via.stderr
    assert (via.stdout, via.stderr) == (plain.stdout, plain.stderr)
    assert via.stdout.strip()


def test_stats_no_stream_lists_the_container(ep, managed):
    via = ep.docker("stats", "--no-stream", "--format", "{{.ID}} {{.Name}}", managed["Id"])
    assert via.returncode == 0, via.stderr
    assert via.stdout.split() == [managed["Id"][:12], managed["Name"].lstrip("/")]


def test_container_inspect_is_redacted_and_otherwise_identical(ep, managed):
    via = ep.docker("inspect", managed["Name"].lstrip("/"))
    assert via.returncode == 0, via.stderr
    assert SECRET not in via.stdout
    [got], [want] = json.loads(via.stdout), json.loads(direct("inspect", managed["Id"]).stdout)
    assert any(e.startswith("SECRET_TOKEN=") for e in want["Config"]["Env"])
    assert got["Config"]["Env"] == [e.split("=", 1)[0] + "=<redacted>" for e in want["Config"]["Env"]]
    assert got["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "<redacted>"}}
    for doc in (got, want):
        del doc["Config"]["Env"], doc["HostConfig"]["LogConfig"]
    assert got == want


def test_image_inspect_is_redacted_and_otherwise_identical(ep):
    via = ep.docker("image", "inspect", BUSYBOX)
    assert via.returncode == 0, via.stderr
    [got], [want] = json.loads(via.stdout), json.loads(direct("image", "inspect", BUSYBOX).stdout)
    for doc in (got, want):
        for section in ("Config", "ContainerConfig"):
            env = (doc.get(section) or {}).pop("Env", None) or []
            if doc is got:
                assert all(e.endswith("=<redacted>") for e in env), env
    assert got == want


def test_logs_follow_streams_until_the_container_ends(ep, docker_api, name, cleanup):
    cleanup.append(n := name("follow"))
    docker_api.create_container(BUSYBOX, ["sh", "-c", "echo first; sleep 1; echo last"], name=n,
                                host_config=docker_api.create_host_config(init=True))
    docker_api.start(n)
    started = time.monotonic()
    via = ep.docker("logs", "-f", n, timeout=20)
    assert via.returncode == 0, via.stderr
    assert via.stdout.split() == ["first", "last"]
    assert time.monotonic() - started > 0.5  # it waited for the container, it did not just read what was there


# --- lifecycle: the agent's containers only ------------------------------------------------------------------------
def test_lifecycle_of_a_managed_container_works(ep, docker_api, managed):
    short = managed["Name"].lstrip("/")
    assert ep.docker("stop", "-t", "1", short).returncode == 0
    assert state(docker_api, managed)["Status"] == "exited"
    assert ep.docker("start", short).returncode == 0
    before = state(docker_api, managed)
    assert before["Running"]
    via = ep.docker("restart", "-t", "1", managed["Id"][:12])
    assert via.returncode == 0, via.stderr
    after = state(docker_api, managed)
    assert after["Running"] and after["StartedAt"] != before["StartedAt"]
    # the lifecycle call went upstream with the resolved id, not the name the client wrote
    assert ep.decisions[-1]["path"] == f"/containers/{managed['Id']}/restart" and ep.decisions[-1]["allowed"]


@pytest.mark.parametrize("verb", ["stop", "restart", "start"])
def test_lifecycle_of_an_unmanaged_container_is_refused(ep, docker_api, unmanaged, verb):
    short = unmanaged["Name"].lstrip("/")
    started_at = state(docker_api, unmanaged)["StartedAt"]
    via = ep.docker(verb, short)
    assert via.returncode != 0
    assert f"Error response from daemon: dtma: docker {verb} is not allowed for executed commands: container " \
           f"{short} is not managed by the agent" in via.stderr
    assert state(docker_api, unmanaged)["Running"] and state(docker_api, unmanaged)["StartedAt"] == started_at


def test_lifecycle_of_a_missing_container_gives_dockers_own_answer(ep):
    via = ep.docker("restart", f"{PREFIX}nosuch")
    assert via.returncode != 0 and f"No such container: {PREFIX}nosuch" in via.stderr and "dtma:" not in via.stderr


# --- denied: 403 with the reason, and nothing changed ----------------------------------------------------------------
def _names(api) -> set:
    return {n for c in api.containers(all=True) for n in c["Names"]}


def _image_tags(api) -> set:
    return {t for i in api.images() for t in (i.get("RepoTags") or [])}


def _engine_state(api) -> tuple:
    """What this session has in the engine (other sessions share it), and the swarm state."""
    mine = [n for n in _names(api) | _image_tags(api) | {v["Name"] for v in api.volumes()["Volumes"] or []} |
            {n["Name"] for n in api.networks()} if PREFIX in n]
    return sorted(mine), api.info()["Swarm"]["LocalNodeState"]


@pytest.fixture(scope="module")
def stopped(docker_api):
    """A stopped container with the session's label: what a prune would remove."""
    c = _container(docker_api, "stopped", ["true"], managed=True)
    docker_api.wait(c["Id"], timeout=10)
    yield c
    docker_api.remove_container(c["Id"], force=True)


DENIED = [
    ("run", ["run", "--name", "{p}run", BUSYBOX, "true"], "docker run is not allowed"),
    ("create", ["create", "--name", "{p}create", BUSYBOX], "docker run is not allowed"),
    ("exec", ["exec", "{m}", "touch", "/pwned"], "docker exec is not allowed"),
    ("cp", ["cp", "/etc/hostname", "{m}:/copied"], "docker cp is not allowed"),
    ("cp-out", ["cp", "{m}:/etc/hostname", "{d}/copied"], "docker cp is not allowed"),
    ("rm", ["rm", "-f", "{m}"], "docker rm is not allowed"),
    ("kill", ["kill", "{m}"], "docker kill is not allowed"),
    ("pause", ["pause", "{m}"], "docker pause is not allowed"),
    ("update", ["update", "--memory", "64m", "--memory-swap", "-1", "{m}"], "docker update is not allowed"),
    ("rename", ["rename", "{m}", "{p}renamed"], "docker rename is not allowed"),
    ("attach", ["attach", "--no-stdin", "{m}"], "docker attach is not allowed"),  # the CLI prints only the status
    ("commit", ["commit", "{m}", "{p}commit"], "docker commit is not allowed"),
    ("export", ["export", "-o", "{d}/export.tar", "{m}"], "docker export is not allowed"),
    ("volume", ["volume", "create", "{p}vol"], "docker volume is not allowed"),
    ("network", ["network", "create", "{p}net"], "docker network is not allowed"),
    ("build", ["build", "-t", "{p}build", "-"], "docker build is not allowed"),
    ("pull", ["pull", "{p}pulled"], "docker pull/import is not allowed"),
    ("tag", ["tag", BUSYBOX, "{p}tagged"], "docker tag is not allowed"),
    ("plugin", ["plugin", "ls"], "docker plugin is not allowed"),
    ("swarm", ["swarm", "init"], "docker swarm (node, service, stack, secret, config) is not allowed"),
    ("secret", ["secret", "ls"], "docker swarm (node, service, stack, secret, config) is not allowed"),
    ("system-prune", ["system", "prune", "-f", "--filter", f"label={LABEL}"], "docker prune is not allowed"),
    ("container-prune", ["container", "prune", "-f", "--filter", f"label={LABEL}"], "docker prune is not allowed"),
]


@pytest.mark.usefixtures("stopped")
@pytest.mark.parametrize("tag, args, reason", DENIED, ids=[d[0] for d in DENIED])
def test_denied_commands_are_refused_with_the_reason_and_change_nothing(ep, docker_api, managed, tag, args, reason):
    before, managed_before = _engine_state(docker_api), docker_api.inspect_container(managed["Id"])
    short = managed["Name"].lstrip("/")
    via = ep.docker(*[a.format(p=PREFIX, m=short, d=ep.dir) for a in args], input=f"FROM {BUSYBOX}\n")
    assert via.returncode != 0
    if tag == "attach":  # the CLI prints only the status of a refused upgrade
        assert "received 403" in via.stderr
    else:
        assert f"Error response from daemon: dtma: {reason} for executed commands: " in via.stderr, via.stderr
    assert ep.decisions[-1]["reason"].startswith(reason)
    assert _engine_state(docker_api) == before
    managed_after = docker_api.inspect_container(managed["Id"])
    for key in ("Name", "State", "HostConfig"):
        assert managed_after[key] == managed_before[key], key
    for path in ("/pwned", "/copied"):
        with pytest.raises(docker.errors.NotFound):
            docker_api.get_archive(managed["Id"], path)
    assert sorted(os.listdir(ep.dir)) in (["docker.sock"], [".docker", "docker.sock"])
    assert ep.decisions[-1]["allowed"] is False and ep.decisions[-1]["status"] == 403


def test_rmi_of_an_image_is_refused(ep, docker_api):
    tag = f"{PREFIX}rmi:latest"
    docker_api.tag(BUSYBOX, f"{PREFIX}rmi", "latest")
    try:
        via = ep.docker("rmi", tag)
        assert via.returncode != 0 and "dtma: docker rmi is not allowed" in via.stderr
        assert tag in _image_tags(docker_api)
    finally:
        docker_api.remove_image(tag)


# --- requests the CLI would never send ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method, target, status", [
    ("POST", "/v1.41/containers/../containers/create?name={p}trick", 400),
    ("POST", "/v1.41/containers/%2e%2e/containers/create?name={p}trick", 400),
    ("POST", "/v1.41/containers/%252e%252e/containers/create?name={p}trick", 400),
    ("GET", "//containers/json", 400),
    ("GET", "/containers/json/", 400),
    ("GET", "/containers/json%00", 400),
    ("GET", "/containers/json%3Fall=1", 400),
    ("GET", "/./containers/json", 400),
    ("POST", "http://x/containers/create?name={p}trick", 400),
    ("GET", "http://x/containers/json", 400),
    ("post", "/containers/create?name={p}trick", 403),
    ("get", "/_ping", 403),
    ("GET", "/V1.41/_ping", 403),
    ("GET", "/v1.41/v1.41/_ping", 403),
    ("GET", "/v1.41", 403),
    ("POST", "/v1.41/containers/{m}/start/../../create?name={p}trick", 400),
])
def test_path_tricks_are_refused(ep, docker_api, managed, method, target, status):
    target = target.format(p=PREFIX, m=managed["Id"])
    got, body = request(ep, method, target, body=b"{\"Image\": \"%s\"}" % BUSYBOX.encode(),
                        headers={"Content-Type": "application/json"})
    assert got == status
    assert json.loads(body)["message"].startswith("dtma: ")
    assert f"/{PREFIX}trick" not in _names(docker_api)
    assert ep.decisions[-1]["allowed"] is False and ep.decisions[-1]["status"] == status


@pytest.mark.parametrize("target", ["/_ping", "/v1.41/_ping", "/v1.24/version", "/v1.41/containers/json?all=1"])
def test_version_prefix_forms_are_served(ep, target):
    assert request(ep, "GET", target)[0] == 200


def test_head_ping_is_served_with_dockers_headers(ep):
    conn = ep.http()
    conn.request("HEAD", "/_ping")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Api-Version") and response.read() == b""
    conn.close()


def test_content_length_with_chunked_is_refused(ep, docker_api, managed):
    status, body = request(ep, "POST", f"/containers/{managed['Id']}/restart",
                           body=b"0\r\n\r\nPOST /containers/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
                           headers={"Content-Length": "5", "Transfer-Encoding": "chunked"})
    assert status == 400 and b"ambiguous" in body
    assert ep.decisions[-1]["allowed"] is False


def test_upgrade_is_refused_even_on_an_allowed_path(ep, managed):
    status, body = request(ep, "GET", f"/containers/{managed['Id']}/logs?stdout=1",
                           headers={"Connection": "Upgrade", "Upgrade": "tcp"})
    assert status == 403 and b"upgrade" in body


def test_a_malformed_request_gets_400_and_the_endpoint_keeps_serving(ep):
    answer = raw_exchange(ep.path, b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b'"message": "dtma: malformed request' in answer
    assert raw_exchange(ep.path, b"GET /_ping HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n").startswith(
        b"HTTP/1.1 400 ")
    assert request(ep, "GET", "/_ping") == (200, b"OK")


def test_a_chunked_request_body_is_forwarded(ep, managed, docker_api):
    started_at = state(docker_api, managed)["StartedAt"]
    conn = ep.http()
    conn.request("POST", f"/v1.41/containers/{managed['Name'].lstrip('/')}/restart?t=1", body=iter([b"{", b"}"]),
                 encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    response = conn.getresponse()
    assert (response.status, response.read()) == (204, b"")
    conn.close()
    assert state(docker_api, managed)["Running"] and state(docker_api, managed)["StartedAt"] != started_at


def test_a_large_body_is_refused_with_413(ep, managed, docker_api):
    status, body = request(ep, "POST", f"/containers/{managed['Id']}/start", body=b"x" * 70000)
    assert status == 413 and b"65536" in body


def test_keep_alive_serves_several_requests_and_denials_on_one_connection(ep):
    conn = ep.http()
    answers = []
    for method, target, body in [("GET", "/_ping", None), ("POST", "/volumes/create", b"{}"),
                                 ("GET", "/containers/json", None), ("GET", "/v1.41/events?until=0", None),
                                 ("GET", "/version", None)]:
        conn.request(method, target, body=body)
        response = conn.getresponse()
        answers.append((response.status, response.read()))
        if method == "GET" and target == "/_ping":
            first = conn.sock
        assert conn.sock is first, f"the connection was closed after {method} {target}"
    conn.close()
    assert [status for status, _body in answers] == [200, 403, 200, 200, 200]
    assert b"docker volume is not allowed" in answers[1][1] and b"ApiVersion" in answers[4][1]
    assert [d["path"] for d in ep.decisions[-5:]] == ["/_ping", "/volumes/create", "/containers/json", "/events",
                                                      "/version"]


# --- streams, closing, the engine away, decisions, peers --------------------------------------------------------------
def test_logs_follow_ends_when_the_endpoint_closes_and_when_the_client_leaves(loop, docker_api, managed):
    for how in ("close", "client"):
        e = Endpoint(loop)
        proc = subprocess.Popen([DOCKER, "logs", "-f", "--tail", "1", managed["Id"]], stdout=subprocess.PIPE,
                                env={"PATH": "/usr/bin", "HOME": e.dir, "DOCKER_HOST": f"unix://{e.path}"})
        try:
            assert proc.stdout.readline().strip() == b"line 7"  # the stream is live
            time.sleep(0.2)
            assert proc.poll() is None and len(e.endpoint._tasks) == 1
            if how == "close":
                e.close()
                proc.wait(5)  # the stream ended with the endpoint
                assert not os.path.exists(e.path)
            else:
                proc.kill()
                proc.wait(5)
                assert wait_until(lambda: not e.endpoint._tasks, 5, 0.05), "the connection outlived its client"
                e.close()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()


def test_docker_away_is_502_with_a_message(loop):
    e = Endpoint(loop, upstream="/tmp/dtmatest-no-such-docker.sock")
    try:
        status, body = request(e, "GET", "/containers/json")
        assert status == 502 and "not reachable" in json.loads(body)["message"]
        via = e.docker("ps")
        assert via.returncode != 0 and "not reachable" in via.stderr and "Traceback" not in via.stderr
    finally:
        e.close()


def test_every_decision_is_reported_without_bodies(loop):
    e = Endpoint(loop)
    try:
        assert e.docker("ps", "-q").returncode == 0
        assert e.docker("run", "-e", f"TOKEN={SECRET}", BUSYBOX).returncode != 0
        ps = [d for d in e.decisions if d["path"] == "/containers/json"]
        assert ps and ps[-1]["allowed"] is True and ps[-1]["kind"] == READ and ps[-1]["method"] == "GET"
        run = e.decisions[-1]
        assert run["allowed"] is False and run["status"] == 403 and run["path"] == "/containers/create"
        assert "docker run is not allowed" in run["reason"] and run["uid"] == os.getuid()
        assert SECRET not in json.dumps(e.decisions)
    finally:
        e.close()


def test_a_failing_audit_callback_stops_the_request(loop, managed, docker_api):
    def audit_down(decision):
        raise OSError("audit log unwritable")

    e = Endpoint(loop)
    e.endpoint = loop.run(e.endpoint.close()) or loop.run(DockerFilter().open(e.path, on_decision=audit_down))
    try:
        started_at = state(docker_api, managed)["StartedAt"]
        assert e.docker("restart", "-t", "1", managed["Id"]).returncode != 0
        assert state(docker_api, managed)["StartedAt"] == started_at
    finally:
        e.close()


def test_peer_uid_allow_list(loop):
    e = Endpoint(loop, allowed_uids={65534})
    try:
        status, body = request(e, "GET", "/_ping")
        assert status == 403 and f"peer uid {os.getuid()}" in json.loads(body)["message"]
        assert e.decisions[-1]["uid"] == os.getuid() and not e.decisions[-1]["allowed"]
        as_nobody = cli(f"unix://{e.path}", "version", "--format", "{{.Server.APIVersion}}", home=e.dir, user=65534)
        assert as_nobody.returncode == 0, as_nobody.stderr
        assert e.decisions[-1]["uid"] == 65534 and e.decisions[-1]["allowed"]
    finally:
        e.close()


def test_uvloop_the_agents_event_loop_serves_the_same(docker_api, managed):
    uvloop = pytest.importorskip("uvloop")
    lt = LoopThread(uvloop.new_event_loop)
    e, proc = Endpoint(lt, allowed_uids={os.getuid()}), None
    try:
        assert e.docker("ps", "-q", "--no-trunc", "--filter", f"id={managed['Id']}").stdout.split() == [managed["Id"]]
        assert "docker run is not allowed" in e.docker("run", BUSYBOX).stderr
        assert SECRET not in e.docker("inspect", managed["Id"]).stdout
        assert e.decisions[-1]["uid"] == os.getuid()
        proc = subprocess.Popen([DOCKER, "logs", "-f", "--tail", "1", managed["Id"]], stdout=subprocess.PIPE,
                                env={"PATH": "/usr/bin", "HOME": e.dir, "DOCKER_HOST": f"unix://{e.path}"})
        assert proc.stdout.readline().strip() == b"line 7"
        e.close()
        proc.wait(5)
    finally:
        if proc is not None:
            proc.kill()
            proc.stdout.close()
        if os.path.exists(e.path):
            e.close()
        lt.stop()


def test_opening_an_endpoint_is_cheap(loop):
    async def open_close(n):
        flt, d = DockerFilter(), tempfile.mkdtemp(prefix="dtf-", dir="/tmp")
        opens = []
        for i in range(n):
            started = time.perf_counter()
            endpoint = await flt.open(f"{d}/{i}.sock")
            opens.append(time.perf_counter() - started)
            await endpoint.close()
        shutil.rmtree(d)
        return opens

    opens = loop.run(open_close(200))
    median = statistics.median(opens)
    print(f"open endpoint: median {median * 1e6:.0f} us, max {max(opens) * 1e6:.0f} us")
    assert median < 0.002


@pytest.mark.parametrize("ps_args", ["e", "auxe", "-auxe", "eww", "-o environ", "-o pid,env", "aux e", "--format=pid,env"])
def test_top_refuses_ps_options_that_print_environments(ps_args):
    from dtma_agent.policy.docker_access import cli_subcommand_kind, top_args_refusal
    assert top_args_refusal(ps_args) is not None
    assert cli_subcommand_kind(["top", "some-container", *ps_args.split()])[0] is None
    assert cli_subcommand_kind(["container", "top", "some-container", *ps_args.split()])[0] is None
    assert cli_subcommand_kind(["top", "some-container"])[0] == "read"
    assert cli_subcommand_kind(["top", "some-container", "-ef"])[0] == "read"


def test_top_through_the_filter_never_shows_the_environment(ep, managed):
    ok = ep.docker("top", managed["Name"].lstrip("/"))
    assert ok.returncode == 0 and "sleep" in ok.stdout, ok.stderr
    for ps_args in (["e"], ["auxe"], ["-o", "pid,environ"]):
        refused = ep.docker("top", managed["Name"].lstrip("/"), *ps_args)
        assert refused.returncode != 0 and SECRET not in refused.stdout + refused.stderr
        assert "not allowed" in refused.stderr
    status, body = request(ep, "GET", f"/v1.41/containers/{managed['Id']}/top?ps_args=auxe")
    assert status == 403 and SECRET.encode() not in body
