"""Shared by the test suites (imported by their conftest.py): a real Docker engine, real agent processes,
real containers.

Every container and network a test makes is named with the `dtmatest-` prefix and removed at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import docker
import pytest
import requests

BUSYBOX = "local/busybox:latest"
MCP_IMAGE = "local/mcp-demo:latest"
# Each pytest session gets its own prefix, so its cleanup never removes another session's containers.
SESSION = uuid.uuid4().hex[:6]
PREFIX = f"dtmatest-{SESSION}-"
AGENT_BIN = Path(sys.executable).with_name("dtma-agent")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class Agent:
    """A real `dtma-agent` process on a free loopback port."""

    def __init__(self, tmp: Path, env: dict | None = None, token: str | None = None):
        self.token = token or secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"agent-{self.port}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "AGENTOPIA_", "BACKEND_TO_DTMA"))}
        # a 1 s settle window (3 s by default) keeps the many deploys of the suite quick; crash loops still show in it
        self.env.update({"DTMA_BEARER_TOKEN": self.token, "PYTHONUNBUFFERED": "1", "DTMA_SETTLE_S": "1", **SANDBOX_ENV,
                         **(env or {})})
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> "Agent":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(AGENT_BIN), "--host", "127.0.0.1", "--port", str(self.port)],
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait and not wait_until(self.answers, 15):
            raise RuntimeError(f"agent did not answer /health; log:\n{self.log()}")
        return self

    def answers(self) -> bool:
        try:
            requests.get(f"{self.url}/health", timeout=1)
            return True
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc:
            self._log.close()
        self.session.close()

    # shorthand for authenticated calls
    def get(self, path, **kw):
        return self.session.get(self.url + path, timeout=kw.pop("timeout", 60), **kw)

    def post(self, path, **kw):
        return self.session.post(self.url + path, timeout=kw.pop("timeout", 120), **kw)

    def put(self, path, **kw):
        return self.session.put(self.url + path, timeout=kw.pop("timeout", 120), **kw)

    def delete(self, path, **kw):
        return self.session.delete(self.url + path, timeout=kw.pop("timeout", 120), **kw)


class SandboxLauncher:
    """The real root launcher of the exec sandbox (`dtma-agent sandbox-launcher`) on a socket of its own; commands
    run as the `dtma-exec` user that scripts/setup.sh creates. The runtime dir (filtered Docker API sockets) must be
    traversable by that user, so it is not under pytest's private tmp dirs."""

    def __init__(self, tmp: Path):
        self.socket = tmp / "sandbox.sock"
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="dtmatest-run-"))
        self.runtime_dir.chmod(0o755)
        self.log_path = tmp / "sandbox-launcher.log"
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict:
        return {"DTMA_SANDBOX_SOCKET": str(self.socket), "DTMA_RUNTIME_DIR": str(self.runtime_dir)}

    def start(self) -> "SandboxLauncher":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([str(AGENT_BIN), "sandbox-launcher", "--socket", str(self.socket),
                                          "--docker-socket-dir", str(self.runtime_dir), "--scratch", "/tmp"],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_until(self.socket.exists, 10):
            raise RuntimeError(f"the sandbox launcher did not start: {self.log_path.read_text(errors='replace')}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


SANDBOX_ENV: dict = {}  # filled by the session's launcher; every Agent gets it


# a release whose binary answers --version but whose agent exits at once
BROKEN_RELEASE = '#!/bin/sh\nif [ "$1" = --version ]; then echo dtma-agent 9.9.9; exit 0; fi\nexit 1\n'


def write_release(home: Path, version: str, script: str | None = None) -> None:
    binary = home / "releases" / version / "bin" / "dtma-agent"
    binary.parent.mkdir(parents=True)
    binary.write_text(script or f'#!/bin/sh\nexec {AGENT_BIN} "$@"\n')
    binary.chmod(0o755)


def links(home: Path) -> dict:
    return {n: os.readlink(home / n) if (home / n).is_symlink() else None for n in ("current", "previous")}


class Supervisor:
    """Restart=always for the agent (systemd's part on a droplet): runs `<home>/current/bin/dtma-agent` again whenever
    it exits, so a release switch or a restart through the API takes effect the way it does there."""

    def __init__(self, home: Path, agent: Agent, tmp: Path):
        self.home, self.agent = home, agent
        self.pidfile = tmp / "agent.pid"
        self.log = open(tmp / "supervised-agent.log", "ab")
        self.stopping = threading.Event()
        self.proc: subprocess.Popen | None = None
        self.spawns = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> "Supervisor":
        self.thread.start()
        return self

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.proc = subprocess.Popen([str(self.home / "current" / "bin" / "dtma-agent"), "--host", "127.0.0.1",
                                          "--port", str(self.agent.port)], env=self.agent.env, stdout=self.log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            self.spawns += 1
            self.pidfile.write_text(str(self.proc.pid))
            self.proc.wait()
            self.stopping.wait(0.2)  # like systemd's RestartSec

    def stop(self) -> None:
        self.stopping.set()
        for _attempt in range(30 if self.thread.ident else 0):  # the loop may be spawning now: stop what runs until it ends
            proc = self.proc
            if proc and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            self.thread.join(0.5)
            if not self.thread.is_alive():
                break
        self.log.close()


class DockerProxy:
    """A unix-socket forwarder in front of the real Docker socket, so a test can take "Docker" away
    from one agent and give it back without stopping the engine the other tests use."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock"):
        self.path, self.target = path, target
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.pings = 0  # GET /_ping requests forwarded (how often the agent checks Docker)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> "DockerProxy":
        if self.path.exists():
            self.path.unlink()
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(str(self.path))
        self._server.listen(32)
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _addr = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, a is client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count_pings: bool = False) -> None:
        try:
            while data := src.recv(65536):
                if count_pings:
                    with self._lock:
                        self.pings += data.count(b"/_ping HTTP")  # GET /_ping or GET /v1.41/_ping
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._server:
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()
        if self.path.exists():
            self.path.unlink()


@pytest.fixture(scope="session")
def docker_api() -> docker.APIClient:
    try:
        api = docker.APIClient(version="auto")
        api.ping()
    except Exception as exc:  # the suite needs a real engine: say so instead of skipping
        pytest.exit(f"no Docker engine answers ({exc}); run scripts/setup.sh first", returncode=3)
    for image in (BUSYBOX, MCP_IMAGE):
        try:
            api.inspect_image(image)
        except docker.errors.ImageNotFound:
            pytest.exit(f"image {image} is missing; run scripts/images.sh", returncode=3)
    return api


def remove_prefixed(api: docker.APIClient, prefix: str = PREFIX) -> None:
    """Remove the containers and group networks whose names start with `prefix` (this session's, by default)."""
    for c in api.containers(all=True, filters={"name": prefix}):
        if any(n.lstrip("/").startswith(prefix) for n in c["Names"]):
            try:
                api.remove_container(c["Id"], force=True, v=True)
            except docker.errors.NotFound:
                pass
    for net in api.networks():
        if net["Name"].startswith(f"agentopia-mcp-{prefix}"):
            try:
                api.remove_network(net["Id"])
            except docker.errors.APIError:
                pass


@pytest.fixture(scope="session", autouse=True)
def clean_docker_session():
    yield
    try:
        remove_prefixed(docker.APIClient(version="auto"))
    except docker.errors.DockerException:
        pass  # no engine, nothing to clean


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("agents")


@pytest.fixture(scope="session", autouse=True)
def sandbox_launcher(session_tmp):
    if subprocess.run(["id", "dtma-exec"], capture_output=True, check=False).returncode != 0:
        pytest.exit("the user dtma-exec (the exec sandbox's identity) is missing; run scripts/setup.sh", returncode=3)
    launcher = SandboxLauncher(session_tmp).start()
    SANDBOX_ENV.update(launcher.env)
    yield launcher
    launcher.stop()


@pytest.fixture(scope="session")
def agent(docker_api, session_tmp) -> Agent:
    """One agent shared by the tests that do not need their own settings."""
    a = Agent(session_tmp).start()
    yield a
    a.stop()


@pytest.fixture
def make_agent(docker_api, tmp_path):
    """Start agents with their own settings: make_agent(env={...})."""
    started = []

    def make(env: dict | None = None, token: str | None = None, wait: bool = True) -> Agent:
        a = Agent(tmp_path, env, token)
        started.append(a)
        return a.start(wait=wait)

    yield make
    for a in started:
        a.stop()


@pytest.fixture
def docker_proxy(tmp_path):
    proxy = DockerProxy(tmp_path / "docker.sock").start()
    yield proxy
    proxy.stop()


@pytest.fixture
def name():
    """A unique name with the cleanup prefix; call it for more than one."""
    def make(tag: str = "") -> str:
        return f"{PREFIX}{tag}{'-' if tag else ''}{uuid.uuid4().hex[:8]}"
    return make


@pytest.fixture
def groups(agent):
    """Group ids to remove through the shared agent after the test (Docker is the state)."""
    ids: list[str] = []
    yield ids
    for gid in ids:
        agent.delete(f"/mcp/groups/{gid}", params={"forceRemove": "true"})


@pytest.fixture
def cleanup(docker_api):
    """Remove containers by name after a test, even when it fails halfway."""
    names: list[str] = []
    yield names
    for n in names:
        try:
            docker_api.remove_container(n, force=True, v=True)
        except docker.errors.NotFound:
            pass


class Registry:
    """A real Docker registry (Debian's docker-registry: distribution 2.x) on a loopback port, with htpasswd (bcrypt)
    authentication for one user. Docker pulls from a registry on 127.0.0.0/8 over plain HTTP without configuration.
    Images this session pushes are named <address>/<PREFIX>…, so cleanup finds them."""

    BIN = "/usr/bin/docker-registry"
    USER = "dtmatest"

    def __init__(self, tmp: Path):
        self.dir = tmp
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(18)
        self.proc: subprocess.Popen | None = None

    @property
    def auth(self) -> dict:
        """registryAuth for the agent (and auth_config for docker-py)."""
        return {"username": self.USER, "password": self.password, "serveraddress": self.address}

    def repository(self, name: str) -> str:
        return f"{self.address}/{PREFIX.rstrip('-')}/{name}"

    def start(self) -> "Registry":
        import bcrypt  # paramiko's dependency, in the virtualenv; the registry accepts bcrypt entries only

        htpasswd = self.dir / "htpasswd"
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=6)).decode()
        htpasswd.write_text(f"{self.USER}:{hashed}\n")
        config = self.dir / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.dir / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '{self.address}'}}\n"
            f"auth: {{htpasswd: {{realm: dtmatest, path: {htpasswd}}}}}\n")
        self.log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen([self.BIN, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not wait_until(self.answers, 15):
            raise RuntimeError("the registry did not answer: " + (self.dir / "registry.log").read_text(errors="replace"))
        return self

    def answers(self) -> bool:
        try:
            return requests.get(f"http://{self.address}/v2/", timeout=1).status_code == 401
        except requests.RequestException:
            return False

    def push(self, api: docker.APIClient, image_id: str, name: str, tag: str = "latest") -> str:
        """Push a local image as <address>/<prefix>/<name>:<tag>; returns that reference."""
        repo = self.repository(name)
        api.tag(image_id, repo, tag)
        for event in api.push(repo, tag=tag, stream=True, decode=True, auth_config=self.auth):
            if isinstance(event, dict) and event.get("error"):
                raise RuntimeError(f"push of {repo}:{tag} failed: {event['error']}")
        return f"{repo}:{tag}"

    def forget(self, api: docker.APIClient) -> None:
        """Remove this registry's references (tags and the digests a push or pull records) from the local engine;
        an image that other references hold (local/busybox) stays. The registry keeps its copies."""
        for image in api.images():
            for ref in (image.get("RepoTags") or []) + (image.get("RepoDigests") or []):
                if ref.startswith(self.address + "/"):
                    try:
                        api.remove_image(ref)
                    except docker.errors.APIError:
                        pass

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def moving_latest(api: docker.APIClient, registry: "Registry", short: str, rev2_marker: str):
    """The body of a fixture: local/busybox pushed to `registry` as `short`:latest and removed from the host, as a
    release pushed as :latest is. Yields (reference, rev1, push_rev2): push_rev2() pushes a second image under the
    same reference and points the host's tag back at the first, so the host believes it has the tag's image and
    only a pull can tell; it returns the second image's id. Both images are removed afterwards."""
    rev1 = api.inspect_image(BUSYBOX)["Id"]
    rev2 = image_variant(api, BUSYBOX, rev2_marker)
    ref = registry.push(api, rev1, short)
    api.remove_image(ref)  # not on the host: the first deployment must pull it

    def push_rev2():
        registry.push(api, rev2, short)
        api.tag(rev1, ref.rsplit(":", 1)[0], "latest")
        return rev2

    yield ref, rev1, push_rev2
    for image in (ref, rev2):
        try:
            api.remove_image(image, force=True)
        except docker.errors.APIError:  # already gone
            pass


def image_variant(api: docker.APIClient, base: str, marker: str) -> str:
    """A new image id from `base` that differs only in one environment variable (a commit of a container that never
    ran): a stand-in for a new release pushed under the same tag."""
    container = api.create_container(base, command=["true"])
    try:
        return api.commit(container["Id"], changes=[f"ENV DTMATEST_REV={marker}"])["Id"]
    finally:
        api.remove_container(container["Id"], force=True)


@pytest.fixture(scope="session")
def registry(docker_api, tmp_path_factory):
    """A real registry with authentication on loopback; its images are removed from the engine at the end."""
    if not Path(Registry.BIN).exists():
        pytest.exit(f"{Registry.BIN} is missing (Debian's docker-registry); run scripts/setup.sh", returncode=3)
    server = Registry(tmp_path_factory.mktemp("registry")).start()
    yield server
    server.forget(docker_api)
    server.stop()


class Sshd:
    """A real OpenSSH server on 127.0.0.1 accepting one client key for root; `known_hosts` holds its host key."""

    def __init__(self, tmp: Path, extra_config: str = ""):
        self.dir = tmp
        self.extra_config = extra_config
        self.port = free_port()
        self.host_key = tmp / "ssh_host_ed25519_key"
        self.client_key = tmp / "id_ed25519"
        self.known_hosts = tmp / "known_hosts"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Sshd":
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        authorized = self.dir / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        authorized.chmod(0o600)
        config = self.dir / "sshd_config"
        config.write_text(f"HostKey {self.host_key}\nAuthorizedKeysFile {authorized}\nPasswordAuthentication no\n"
                          f"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {self.dir / 'sshd.pid'}\n"
                          "PermitRootLogin prohibit-password\n" + self.extra_config)
        # a known_hosts entry for this server, for the test that verifies the host key
        public = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.log = open(self.dir / "sshd.log", "wb")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config), "-p", str(self.port),
                                      "-o", "ListenAddress=127.0.0.1"], stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_until(self.listening, 10):
            raise RuntimeError("sshd did not listen: " + (self.dir / "sshd.log").read_text())
        return self

    def listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    def options(self, **extra) -> dict:
        return {"ssh_host": "127.0.0.1", "ssh_port": self.port, "ssh_user": "root", "ssh_key_file": str(self.client_key),
                **extra}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


class PrivateDocker:
    """A Docker engine of its own (dockerd with its own socket, data and exec roots and network namespace; no bridge
    network, no iptables) with local/busybox loaded. Agents on the shared engine all see every managed container on
    this machine, as agents on one VM would; an agent given this engine (DOCKER_HOST) sees only its own, as on a
    droplet of its own. Its containers have no network (no bridge): nothing can be published or probed over HTTP."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="dtmatest-dockerd-"))
        self.socket = self.dir / "docker.sock"
        self.proc: subprocess.Popen | None = None

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, shared: docker.APIClient) -> "PrivateDocker":
        with open(self.dir / "dockerd.log", "wb") as log:
            # in a network namespace of its own: a dockerd without a bridge deletes the host's docker0, which the
            # shared engine needs; there it touches nothing of the host's network
            self.proc = subprocess.Popen(
                ["unshare", "--net", "--", "/usr/sbin/dockerd", "--data-root", str(self.dir / "data"),
                 "--exec-root", str(self.dir / "exec"), "--pidfile", str(self.dir / "dockerd.pid"),
                 "-H", self.docker_host, "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip6tables=false"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_until(self.answers, 30, 0.25):
            raise RuntimeError("a private dockerd did not start: " + (self.dir / "dockerd.log").read_text(errors="replace"))
        self.api = docker.APIClient(base_url=self.docker_host, version="auto", timeout=60)
        self.api.load_image(shared.get_image(BUSYBOX))
        return self

    def answers(self) -> bool:
        try:
            return docker.APIClient(base_url=self.docker_host, version="1.41", timeout=2).ping()
        except (docker.errors.DockerException, requests.RequestException):
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # dockerd stops its containers and unmounts their filesystems
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
