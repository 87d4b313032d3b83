"""A "droplet" for the suites that test the agent as the role installs it (tests/confinement, tests/faults):
scripts/demo.sh brings up a Debian systemd + sshd container with the host's Docker socket, runs playbooks/install.yml
(the real role: the agent is the systemd unit `dtma`) and deploy_mcp_group.yml over SSH. Containers the agent
creates are host containers, visible to `docker` on the host.

Each suite gets a droplet of its own (name, ports, group, state dir), so suites never disturb each other.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from dtma_testing import free_port

REPO = Path(__file__).resolve().parents[1]
DOCKER = "/usr/bin/docker"
# one install at a time: installs share the controller's wheel cache (~/.cache/dtma/wheels)
INSTALL_LOCK = threading.Lock()


def sh(args, check=True, timeout=120, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{args!r} failed ({r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}")
    return r


@dataclass
class Droplet:
    name: str
    session: str
    port: int
    token: str
    backend_key: str
    state_dir: Path
    env: dict
    mcp: str = ""          # the MCP server deploy_mcp_group.yml deployed (group `group`)
    mcp_port: int = 0
    group: str = ""

    def __post_init__(self):
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    # --- the agent's API ---------------------------------------------------------------------------------------
    def request(self, method: str, path: str, timeout: float = 60, **kw) -> tuple[int, str]:
        try:
            r = self.http.request(method, self.url + path, timeout=timeout, **kw)
            return r.status_code, r.text
        except requests.RequestException as exc:
            return 0, f"request failed: {exc}"

    def execute(self, command: str, timeout_ms: int = 5000) -> tuple[int, dict | str]:
        body = {"command": command, "timeout": timeout_ms, "dry_run": False}
        code, text = self.request("POST", "/ssh/execute", json=body, timeout=timeout_ms / 1000 + 30)
        try:
            return code, json.loads(text)
        except ValueError:
            return code, text

    def health(self) -> tuple[int, dict | None]:
        """GET /health (no token): (status, body), (0, None) when nothing answers."""
        try:
            r = requests.get(self.url + "/health", timeout=2)
        except requests.RequestException:
            return 0, None
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, None

    def healthy(self) -> bool:
        return self.health()[0] == 200

    # --- root inside the droplet (the checker's eyes, not a client's) ------------------------------------------
    def root(self, script: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh([DOCKER, "exec", self.name, "sh", "-c", script], check=check, timeout=timeout)

    def agent_state(self) -> tuple[int, int]:
        out = self.root("systemctl show dtma -p MainPID -p NRestarts --value").stdout.split()
        return (int(out[0]), int(out[1])) if len(out) == 2 else (0, -1)

    def wait_healthy(self, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return True
            time.sleep(0.3)
        return False

    def recover_agent(self) -> None:
        """Continue a stopped agent, restart a dead one."""
        if self.wait_healthy(4):
            return
        self.root("systemctl kill -s SIGCONT dtma; sleep 1")
        if self.wait_healthy(4):
            return
        self.root("systemctl restart dtma")
        self.wait_healthy(30)

    def playbook(self, *args, timeout: float = 600) -> subprocess.CompletedProcess:
        """ansible-playbook against this droplet (its inventory, token and SSH key): scripts/demo.sh playbook."""
        return demo(self.env, "playbook", *args, timeout=timeout)


def have_droplet_image() -> bool:
    r = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", "/bin/sh", "local/debian-systemd:bookworm", "-c",
                        "test -x /usr/bin/docker && test -x /usr/bin/bwrap"], capture_output=True, check=False)
    return r.returncode == 0


def ensure_images() -> None:
    if not have_droplet_image():
        sh(["bash", str(REPO / "scripts/images.sh")], timeout=900)


def demo(env: dict, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "scripts/demo.sh"), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def droplet_conf(state: Path, keep: bool, prefix: str) -> dict:
    """Name, ports and keys of a new droplet, or of the kept one (keep: development only)."""
    saved = state / "droplet.json"
    if keep and saved.exists():
        return json.loads(saved.read_text())
    session = uuid.uuid4().hex[:6]
    return {"session": session, "name": f"{prefix}-{session}", "ssh_port": free_port(), "port": free_port(),
            "mcp_port": free_port(), "backend_key": "bk" + secrets.token_hex(24)}


def install(cls: type, state: Path, conf: dict, extra_vars: dict, **fields) -> Droplet:
    """scripts/demo.sh for the droplet `conf` with `extra_vars` on every playbook; returns cls(..., **fields)."""
    state.mkdir(parents=True, exist_ok=True)
    vars_file = state / "vars.yml"
    vars_file.write_text(json.dumps({"dtma_backend_api_key": conf["backend_key"], **extra_vars}))
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "DTMA_DEMO_DIR": str(state / "demo"), "DTMA_DROPLET_NAME": conf["name"],
           "DTMA_DROPLET_SSH_PORT": str(conf["ssh_port"]), "DTMA_PORT": str(conf["port"]), "DTMA_VENV": str(venv),
           "DTMA_SKIP_SETUP": "1", "DTMA_DEMO_VARS_FILE": str(vars_file)}
    with INSTALL_LOCK:
        r = demo(env)
    if r.returncode != 0:
        demo(env, "stop", timeout=180)
        raise RuntimeError(f"scripts/demo.sh ({conf['name']}) failed:\n{r.stdout[-4000:]}\n{r.stderr[-3000:]}")
    (state / "droplet.json").write_text(json.dumps(conf))
    token = (state / "demo/tokens/droplet-1.token").read_text().strip()
    return cls(name=conf["name"], session=conf["session"], port=conf["port"], token=token,
               backend_key=conf["backend_key"], state_dir=state, env=env, **fields)


def install_with_mcp_group(state: Path, keep: bool, kind: str, code: str, extra_vars: dict | None = None) -> Droplet:
    """A droplet of its own (`kind`-<session>) with the role installed and the demo group `<code><session>`: one real
    MCP server (streamable HTTP), cheap and quick to answer. Healthy, or RuntimeError."""
    conf = droplet_conf(state, keep, kind)
    group = f"{code}{conf['session']}"
    extra = {**(extra_vars or {}), "dtma_mcp_group_name": group, "dtma_mcp_group_servers": [{
        "name": f"{group}-http", "image": "local/mcp-demo:latest", "account_tool_instance_id": f"{group}-1",
        "transport": "streamable-http", "endpoint_path": "/mcp", "ports": {"8080": conf["mcp_port"]},
        "resource_template": "small"}]}
    d = install(Droplet, state, conf, extra, mcp=f"{group}-http", mcp_port=conf["mcp_port"], group=group)
    if not d.wait_healthy(30):
        raise RuntimeError(f"the agent installed on {d.name} does not answer /health")
    return d


def session_droplet(root: Path, keep: bool, install_fn, code: str):
    """A suite's session-scoped droplet: installed in a thread (installs serialize on INSTALL_LOCK) by
    install_fn(root, keep), yielded, then removed with whatever a failed test left behind (names starting with
    `code` + session). A failed install fails the suite with the install's own message."""
    import docker
    import pytest

    from dtma_testing import remove_prefixed

    ensure_images()
    install_thread = Background(install_fn, root, keep)
    try:
        d = install_thread.result()
    except Exception as exc:  # noqa: BLE001 - the install's own message says what failed
        pytest.fail(str(exc))
    yield d
    if not keep:
        remove(d)
    remove_prefixed(docker.APIClient(version="auto"), f"{code}{d.session}")


def remove(d: Droplet) -> None:
    """The demo group through the agent, then the droplet."""
    demo(d.env, "stop", timeout=180)


class Background(threading.Thread):
    """A function run in a thread; result() waits for it and re-raises its exception."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.value, self.error = fn, args, None, None
        self.start()

    def run(self):
        try:
            self.value = self.fn(*self.args)
        except BaseException as exc:  # noqa: BLE001 - reported to the fixture that waits for it
            self.error = exc

    def result(self, timeout: float = 900):
        self.join(timeout)
        if self.error:
            raise self.error
        return self.value
