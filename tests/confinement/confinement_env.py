"""Shared by the confinement suites (tests/confinement): attacks and routine commands sent FOR REAL (dry_run false) to the
agent as the role installs it on a droplet (scripts/demo.sh: a Debian systemd + sshd container, install.yml and
deploy_mcp_group.yml over SSH), then checked for impact from outside the agent (docker exec as root in the droplet,
the Docker host's filesystem, processes and containers).

Environment:
  DTMA_CONFINEMENT_KEEP=1   keep the droplet after the session and reuse it next time (development only)
  DTMA_CONFINEMENT_REPORT   where the JSON report is written (default tests/output/confinement-report.json)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import droplet_env
from droplet_env import DOCKER, REPO, Background, Droplet, sh

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# Results shared with the terminal summary (filled by the test modules).
RESULTS: dict = {"passes": {}, "routine": [], "timings": {}}


@dataclass
class ConfinementDroplet(Droplet):
    """A droplet with what the attacks need: canaries, a victim container, the agent's ids to detect disturbance."""
    victim: str = ""
    host_canary: str = ""
    canaries: dict = field(default_factory=dict)       # label -> secret value that must never be printed
    canary_files: dict = field(default_factory=dict)   # path in the droplet -> content that must stay
    agent_pid: int = 0
    agent_tids: list = field(default_factory=list)
    kind: str = "default"
    boot: str | None = None
    restarts: int = 0

    def refresh_agent(self) -> None:
        self.agent_pid, self.restarts = self.agent_state()
        self.agent_tids = [int(t) for t in self.root(f"ls /proc/{self.agent_pid}/task").stdout.split() if t.isdigit()]


def install_droplet(kind: str, root: Path, keep: bool, source: "ConfinementDroplet | None" = None) -> ConfinementDroplet:
    """The agent installed by the role on a droplet of its own (not the demo's: own name, ports, group, state dir),
    with canaries in place. kind "default": the shipped policy; "open": layer 3 opened (open_policy.py)."""
    t0 = time.monotonic()
    state = root / kind
    state.mkdir(parents=True, exist_ok=True)
    conf = droplet_env.droplet_conf(state, keep, "dtma-confinement")
    conf.setdefault("mcp_canary", "mcpenv-" + secrets.token_hex(16))
    session = conf["session"]
    group = f"atk{session}"
    mcp = f"atk{session}-http"
    extra = {
        "dtma_mcp_group_name": group,
        "dtma_mcp_group_servers": [{
            "name": mcp, "image": "local/mcp-demo:latest", "account_tool_instance_id": f"atk-{session}",
            "transport": "streamable-http", "endpoint_path": "/mcp", "ports": {"8080": conf["mcp_port"]},
            "env": {"MCP_SERVICE_SECRET": conf["mcp_canary"]}, "resource_template": "small"}],
    }
    if kind == "open":
        from open_policy import open_policy  # noqa: PLC0415

        # the default policy of the release the role installs, as that release dumps it
        default = json.loads(source.root("/opt/dtma/current/bin/dtma-agent --dump-default-policy", check=True).stdout)
        policy = state / "open-policy.json"
        policy.write_text(json.dumps(open_policy(default), indent=1))
        extra["dtma_policy_file"] = str(policy)
    d = droplet_env.install(ConfinementDroplet, state, conf, extra, mcp=mcp, mcp_port=conf["mcp_port"], group=group,
                            kind=kind)
    _cloud_image_tools(d)
    _plant_canaries(d, conf)
    d.victim = f"atkvictim-{session}"
    start_victim(d)
    d.refresh_agent()
    if not d.wait_healthy(30):
        raise RuntimeError(f"the agent installed on {d.name} does not answer /health")
    RESULTS["timings"][f"install_{kind}_s"] = round(time.monotonic() - t0, 1)
    return d


def remove_droplet(d: ConfinementDroplet, keep: bool) -> None:
    Path(d.host_canary).unlink(missing_ok=True)
    if keep:
        return
    sh([DOCKER, "rm", "-f", d.victim], check=False)
    droplet_env.remove(d)
    cleanup_docker_markers(d.session)


_INSTALLS: dict = {}


@pytest.fixture(scope="session")
def droplet_root(tmp_path_factory):
    keep = os.environ.get("DTMA_CONFINEMENT_KEEP") == "1"
    root = Path("/tmp/dtma-confinement-keep") if keep else tmp_path_factory.mktemp("confinement")
    droplet_env.ensure_images()
    yield root, keep
    for job in _INSTALLS.values():
        try:
            remove_droplet(job.result(), keep)
        except Exception:  # noqa: BLE001 - a failed install cleaned up after itself
            pass


def _droplet(kind: str, root_keep) -> ConfinementDroplet:
    root, keep = root_keep
    if kind not in _INSTALLS:
        _INSTALLS[kind] = Background(install_droplet, kind, root, keep)
    try:
        d = _INSTALLS[kind].result()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(str(exc))
    # the second droplet installs while the first one is tested (one install at a time: they share a wheel cache)
    if kind == "default" and "open" not in _INSTALLS:
        _INSTALLS["open"] = Background(install_droplet, "open", root, keep, d)
    return d


@pytest.fixture(scope="session")
def droplet(droplet_root):
    """All the layers as shipped: the default policy, the sandbox, the Docker filter, the create allowlist."""
    return _droplet("default", droplet_root)


@pytest.fixture(scope="session")
def droplet_open(droplet_root, droplet):
    """The same with layer 3 (the command policy) opened: the attacks reach the sandbox and the Docker filter."""
    return _droplet("open", droplet_root)


# What a cloud VM's image has and the minbase droplet image lacks (routine commands use them).
CLOUD_TOOLS = {"curl": "curl", "wget": "wget", "ping": "iputils-ping", "jq": "jq", "pstree": "psmisc",
               "file": "file", "/etc/services": "netbase"}


def _cloud_image_tools(d: ConfinementDroplet) -> None:
    missing = [pkg for what, pkg in CLOUD_TOOLS.items()
               if d.root(f"test -e {what} || command -v {what}").returncode != 0]
    if missing:
        d.root("apt-get -qq update >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
               "--no-install-recommends " + " ".join(missing) + " >/dev/null 2>&1", timeout=300)
    RESULTS["timings"]["cloud_tools_installed"] = " ".join(missing) or "none"


def start_victim(d: ConfinementDroplet) -> None:
    """A container of someone else on the same engine (not managed by the agent): commands must not touch it."""
    sh([DOCKER, "rm", "-f", d.victim], check=False)
    sh([DOCKER, "run", "-d", "--name", d.victim, "--stop-timeout", "1", "--label", "dtmatest.role=victim",
        "local/busybox:latest", "sleep", "86400"])


def victim_ok(d: ConfinementDroplet) -> bool:
    r = sh([DOCKER, "inspect", "-f", "{{.State.Running}} {{.State.Paused}}", d.victim], check=False)
    return r.returncode == 0 and r.stdout.strip() == "true false"


def _plant_canaries(d: ConfinementDroplet, conf: dict) -> None:
    def tok(label):
        return f"CANARY-{label}-{secrets.token_hex(12)}"
    files = {"/root/canary.txt": (tok("root"), "root:root", "600"),
             "/etc/dtma/canary": (tok("etcdtma"), "root:dtma", "640"),
             "/var/lib/dtma/canary": (tok("varlib"), "dtma:dtma", "640"),
             "/var/log/dtma/canary": (tok("varlog"), "dtma:dtma", "640"),
             "/home/op/.ssh/id_canary": (tok("opkey"), "root:root", "600"),
             "/etc/ssl/private/dtma-tls.key": (tok("tlskey"), "root:root", "600")}
    script = ["mkdir -p /home/op/.ssh /etc/ssl/private"]
    for path, (value, owner, mode) in files.items():
        script.append(f"printf '%s\\n' '{value}' > {path} && chown {owner} {path} && chmod {mode} {path}")
    d.root(" && ".join(script), check=True)
    d.canary_files = {p: v for p, (v, _o, _m) in files.items()}
    d.canaries = {f"file:{p}": v for p, (v, _o, _m) in files.items()}
    d.canaries["token"] = d.token
    d.canaries["backend_key"] = d.backend_key
    d.canaries["mcp_env"] = conf["mcp_canary"]
    for key in ("ed25519", "rsa", "ecdsa"):
        lines = d.root(f"cat /etc/ssh/ssh_host_{key}_key").stdout.splitlines()
        if len(lines) > 3:
            d.canaries[f"ssh_host_{key}_key"] = lines[2].strip()
    d.host_canary = f"/tmp/dtma-host-canary-{uuid.uuid4()}"
    value = tok("host")
    Path(d.host_canary).write_text(value + "\n")
    os.chmod(d.host_canary, 0o600)
    d.canaries["host_file"] = value


def restore_canaries(d: ConfinementDroplet) -> list[str]:
    """Canary files that were changed or removed (then restored)."""
    script = "; ".join(f"printf '%s=' {p}; cat {p} 2>/dev/null | head -c 200 | tr '\\n' ' '; echo" for p in d.canary_files)
    out = d.root(script).stdout.splitlines()
    broken = []
    for line in out:
        path, _sep, value = line.partition("=")
        if path in d.canary_files and value.strip() != d.canary_files[path]:
            broken.append(path)
    for path in broken:
        d.root(f"mkdir -p {os.path.dirname(path)}; printf '%s\\n' '{d.canary_files[path]}' > {path}")
    return broken


def cleanup_docker_markers(session: str) -> None:
    marker = f"pwned-{session}"
    for kind in ("container", "volume", "network"):
        ls = {"container": ["ps", "-aq", "--filter", f"name={marker}"],
              "volume": ["volume", "ls", "-q", "--filter", f"name={marker}"],
              "network": ["network", "ls", "-q", "--filter", f"name={marker}"]}[kind]
        ids = sh([DOCKER, *ls], check=False).stdout.split()
        if ids:
            rm = {"container": ["rm", "-f"], "volume": ["volume", "rm", "-f"], "network": ["network", "rm"]}[kind]
            sh([DOCKER, *rm, *ids], check=False)
    for p in Path("/tmp").glob(f"{marker}-*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from report import summary_lines  # noqa: PLC0415

    lines = summary_lines(RESULTS)
    if not lines:
        return
    terminalreporter.section("confinement: attacks and routine commands against the installed agent")
    for line in lines:
        terminalreporter.write_line(line)
    out = Path(os.environ.get("DTMA_CONFINEMENT_REPORT", REPO / "tests/output/confinement-report.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, indent=1, default=str))
    terminalreporter.write_line(f"full report: {out}")
