"""The playbooks' fallback goes through the host's own Ansible connection, whatever that connection is: here a
droplet whose sshd takes only a non-root user (`ops`, passwordless sudo) and only from a jump host (a second
container running sshd, the ProxyJump of the inventory); the controller cannot log in to it directly. Over that
connection playbooks/install.yml installs the agent (become), restart.yml restarts an agent that hangs (SIGSTOP) and
redeploy.yml rolls back a release that does not start, then fails. Judged from outside: GET /health (boot_id,
version), systemd's MainPID and the release links read as root inside the droplet.

Both containers and their network are this module's own (prefix dtma-jump-<session>), removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

import droplet_env
from droplet_env import DOCKER, REPO, sh
from dtma_testing import free_port
from fleet_env import TIMINGS

pytestmark = pytest.mark.timeout(900)

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
HOME = "/opt/dtma"
PORT = 30000
NEW = "0.9.0"  # the release that does not start
BROKEN = f"""#!/bin/sh
if [ "$1" = --version ]; then echo "dtma-agent {NEW}"; exit 0; fi
echo "release {NEW}: this agent does not start" >&2
exit 3
"""
# the jump host: sshd only (no systemd), one user `hop` that may forward to the droplet
BASTION = """set -e
ssh-keygen -A >/dev/null
mkdir -p /run/sshd
useradd -m -s /bin/sh hop
install -d -m 700 -o hop -g hop /home/hop/.ssh
printf '%s\\n' "$HOP_KEY" >/home/hop/.ssh/authorized_keys
chown hop:hop /home/hop/.ssh/authorized_keys && chmod 600 /home/hop/.ssh/authorized_keys
exec /usr/sbin/sshd -D -e
"""


@dataclass
class JumpedDroplet:
    name: str
    ip: str               # on the test's network only: the API is reached there, SSH only through the bastion
    bastion_ip: str
    root: Path
    ssh_config: Path
    inventory: Path

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{PORT}"

    def health(self) -> dict | None:
        try:
            r = requests.get(self.url + "/health", timeout=2)
            return r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def wait_healthy(self, timeout: float = 30) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.health()
            if body:
                return body
            time.sleep(0.3)
        return None

    def as_root(self, script: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
        """root inside the droplet: the checker's eyes and hands, not the controller's way in."""
        return sh([DOCKER, "exec", "-i", self.name, "sh", "-c", script], check=check, **kw)

    def main_pid(self) -> int:
        return int(self.as_root("systemctl show dtma -p MainPID --value", check=True).stdout.strip() or 0)

    def links(self) -> dict:
        out = self.as_root(f"cd {HOME} && for l in current previous; do printf '%s=%s\\n' $l \"$(readlink $l)\"; done").stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def ssh(self, *args: str) -> subprocess.CompletedProcess:
        """The controller's own ssh with the inventory's config (key, known hosts, the bastion's address)."""
        return subprocess.run(["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                               *args], capture_output=True, text=True, timeout=60, check=False)

    def playbook(self, playbook: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "ANSIBLE_"))}
        # pipelining: a become task is one SSH round trip instead of four (through the jump host; ~5x faster install)
        env = {**base, "ANSIBLE_COLLECTIONS_PATH": str(self.root / "collections"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_PIPELINING": "1"}
        return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(self.inventory), str(REPO / playbook), *args],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _ip(container: str, network: str) -> str:
    return sh([DOCKER, "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
               container]).stdout.strip()


def _keyscan(host: str, port: int) -> str:
    for _attempt in range(50):
        r = subprocess.run(["ssh-keyscan", "-p", str(port), "-t", "ed25519", host], capture_output=True, text=True,
                           timeout=30, check=False)
        if r.stdout.strip():
            return r.stdout
        time.sleep(0.2)
    raise RuntimeError(f"no SSH host key from {host}:{port}")


def _bring_up(root: Path, prefix: str, network: str) -> JumpedDroplet:
    key = root / "id_ed25519"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dtma-jump-test", "-f", str(key)])
    public = Path(f"{key}.pub").read_text().strip()
    sh([DOCKER, "network", "create", network])
    bastion, name = f"{prefix}-bastion", f"{prefix}-droplet"
    bastion_port = free_port()
    sh([DOCKER, "run", "-d", "--name", bastion, "--hostname", "bastion", "--network", network,
        "-p", f"127.0.0.1:{bastion_port}:22", "-e", f"HOP_KEY={public}", "local/debian-systemd:bookworm",
        "sh", "-c", BASTION])
    # the droplet as scripts/demo.sh makes one (systemd, the host's Docker socket, what bubblewrap needs), but on the
    # test's network only, with no port published
    sh([DOCKER, "run", "-d", "--name", name, "--hostname", "jumped-1", "--network", network, "--cap-add", "SYS_ADMIN",
        "--cgroupns=host", "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--security-opt", "systempaths=unconfined", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "-v", "/var/run/docker.sock:/var/run/docker.sock", "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "local/debian-systemd:bookworm"])
    for _attempt in range(100):
        r = sh([DOCKER, "exec", name, "systemctl", "is-system-running"], check=False)
        if r.stdout.strip() in ("running", "degraded"):
            break
        time.sleep(0.2)
    bastion_ip, ip = _ip(bastion, network), _ip(name, network)
    # what the cloud gives: host keys of its own, an `ops` user with passwordless sudo whose key is accepted only
    # from the bastion, and no key for root
    sh([DOCKER, "exec", "-i", name, "sh", "-c", """set -e
rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null
useradd -m -s /bin/bash ops
printf 'ops ALL=(ALL) NOPASSWD:ALL\\n' >/etc/sudoers.d/ops && chmod 440 /etc/sudoers.d/ops
install -d -m 700 -o ops -g ops /home/ops/.ssh
cat >/home/ops/.ssh/authorized_keys
chown ops:ops /home/ops/.ssh/authorized_keys && chmod 600 /home/ops/.ssh/authorized_keys
rm -f /root/.ssh/authorized_keys
systemctl restart ssh"""], input=f'from="{bastion_ip}" {public}\n')
    known_hosts = root / "known_hosts"
    known_hosts.write_text(_keyscan("127.0.0.1", bastion_port) + _keyscan(ip, 22))
    ssh_config = root / "ssh_config"
    ssh_config.write_text(f"""Host dtma-bastion
  HostName 127.0.0.1
  Port {bastion_port}
  User hop
Host *
  IdentityFile {key}
  IdentitiesOnly yes
  UserKnownHostsFile {known_hosts}
  StrictHostKeyChecking yes
""")
    inventory = root / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"dtma_hosts": {"hosts": {"jumped-1": {
        "ansible_host": ip,
        "ansible_user": "ops",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": f"-F {ssh_config} -o ProxyJump=dtma-bastion",
        "dtma_port": PORT,
        "dtma_generate_token": True,
        "dtma_token_file": str(root / "jumped-1.token"),
    }}}}, sort_keys=False))
    collections = root / "collections" / "ansible_collections" / "agentopia"
    collections.mkdir(parents=True)
    (collections / "dtma").symlink_to(REPO)
    return JumpedDroplet(name=name, ip=ip, bastion_ip=bastion_ip, root=root, ssh_config=ssh_config,
                         inventory=inventory)


@pytest.fixture(scope="module")
def jumped(tmp_path_factory):
    droplet_env.ensure_images()
    prefix = f"dtma-jump-{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("jump")
    try:
        d = _bring_up(root, prefix, prefix)
        t0 = time.monotonic()
        with droplet_env.INSTALL_LOCK:
            run = d.playbook("playbooks/install.yml")
        TIMINGS["install.yml through the jump host"] = time.monotonic() - t0
        assert run.returncode == 0, f"install.yml through the jump host failed:\n{run.stdout[-4000:]}{run.stderr[-2000:]}"
        assert d.wait_healthy(30), "the agent installed through the jump host does not answer /health"
        yield d
    finally:
        for container in (f"{prefix}-droplet", f"{prefix}-bastion"):
            sh([DOCKER, "rm", "-f", "-v", container], check=False)
        sh([DOCKER, "network", "rm", prefix], check=False)


def test_the_droplet_takes_ssh_only_from_the_jump_host_as_a_non_root_user(jumped: JumpedDroplet):
    target = f"ops@{jumped.ip}"
    direct = jumped.ssh("-o", "ProxyJump=none", target, "true")
    assert direct.returncode != 0 and "Permission denied" in direct.stderr, direct
    as_root = jumped.ssh("-J", "dtma-bastion", f"root@{jumped.ip}", "true")
    assert as_root.returncode != 0 and "Permission denied" in as_root.stderr, as_root
    through = jumped.ssh("-J", "dtma-bastion", target, "id -un; sudo -n id -un")
    assert through.returncode == 0 and through.stdout.split() == ["ops", "root"], through


def test_restart_of_a_hung_agent_goes_through_the_hosts_connection(jumped: JumpedDroplet):
    before, pid = jumped.wait_healthy(), jumped.main_pid()
    assert before and pid, "the agent is not running"
    jumped.as_root("systemctl kill --signal=SIGSTOP dtma", check=True)
    try:
        assert jumped.health() is None, "a stopped agent answered"
        t0 = time.monotonic()
        run = jumped.playbook("playbooks/restart.yml", "-e", json.dumps({"dtma_wait_timeout": 30}))
        TIMINGS["restart.yml, hung agent, through the jump host"] = time.monotonic() - t0
    finally:
        jumped.as_root("systemctl kill --signal=SIGCONT dtma")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    assert "restarted over the host's connection" in out, out[-5000:]
    after = jumped.wait_healthy(5)
    assert after and after["boot_id"] != before["boot_id"], (before, after)
    assert jumped.main_pid() not in (0, pid)
    assert after["boot_id"] in out, "the play does not show the new agent process"


def test_redeploy_to_a_release_that_does_not_start_is_rolled_back_through_the_hosts_connection(jumped: JumpedDroplet):
    before, links = jumped.wait_healthy(), jumped.links()
    assert before and links["current"].startswith("releases/"), (before, links)
    release = f"{HOME}/releases/{NEW}"
    jumped.as_root(f"mkdir -p {release}/bin && ln -sfn /usr/bin/python3 {release}/bin/python && "
                   f"cat > {release}/bin/dtma-agent && chmod 755 {release}/bin/dtma-agent", check=True, input=BROKEN)
    t0 = time.monotonic()
    # the release is in place: the role's install phase is skipped (as the molecule scenario `alternative` does)
    run = jumped.playbook("playbooks/redeploy.yml", "--skip-tags", "dtma_install", "-e", json.dumps({
        "dtma_version": NEW, "dtma_stamp_version": True, "dtma_wait_timeout": 12}))
    TIMINGS["redeploy.yml, broken release, through the jump host"] = time.monotonic() - t0
    out = run.stdout + run.stderr
    assert run.returncode != 0, f"the play did not fail:\n{out[-5000:]}"
    assert "rolled back over its own connection" in out and "answers again" in out, out[-5000:]
    after = jumped.wait_healthy(5)
    assert after and after["version"] == before["version"] and after["boot_id"] != before["boot_id"], (before, after)
    now = jumped.links()
    assert now == {"current": links["current"], "previous": f"releases/{NEW}"}, (links, now)
    assert "PLAY RECAP" in out and "failed=1" in out, out[-3000:]


def test_dtma_agent_exec_runs_over_the_hosts_connection_under_the_hosts_policy(jumped: JumpedDroplet):
    """The replacement of dtma_exec's fallback=ssh (its EXAMPLES): the request through `dtma-agent exec` on the host,
    over the host's connection with become; the host's policy decides and its sandbox runs the command."""
    results = jumped.root / "exec-results.json"
    playbook = jumped.root / "exec-over-connection.yml"
    run_task = {"ansible.builtin.command": {"argv": [f"{HOME}/current/bin/dtma-agent", "exec", "--env-file",
                                                     "/etc/dtma/dtma.env"], "stdin": "{{ item | to_json }}"},
                "become": True, "loop": [{"argv": ["id", "-un"], "timeout": 30000},
                                         {"command": "rm -rf /", "timeout": 30000}],
                "register": "__exec", "failed_when": False, "changed_when": True}
    save = {"ansible.builtin.copy": {"content": "{{ __exec.results | map(attribute='stdout') | list | to_json }}",
                                     "dest": str(results), "mode": "0600"}, "delegate_to": "localhost"}
    playbook.write_text(json.dumps([{"name": "dtma-agent exec over the host's connection", "hosts": "dtma_hosts",
                                     "gather_facts": False, "tasks": [run_task, save]}]))
    run = jumped.playbook(str(playbook))
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    ran, refused = (json.loads(out) for out in json.loads(results.read_text()))
    assert ran["exit_code"] == 0 and ran["stdout"] == "dtma-exec\n", ran  # the agent's sandbox user
    assert refused.get("error") == "command blocked by policy" and "exit_code" not in refused, refused


def test_diagnostics_checks_the_hosts_connection_when_asked(jumped: JumpedDroplet):
    run = jumped.playbook("playbooks/diagnostics.yml", "-e", "dtma_diagnostics_connection=true")
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "connection=healthy" in out, out[-3000:]
    # the same host without its jump host (and no ControlMaster, which would reuse the connection the run above left
    # open): the agent answers, the connection does not, and the host fails
    run = jumped.playbook("playbooks/diagnostics.yml", "-e", json.dumps({
        "dtma_diagnostics_connection": True, "ansible_ssh_args": "-C -o ControlMaster=no",
        "ansible_ssh_common_args": f"-F {jumped.ssh_config} -o ProxyJump=none"}))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "connection=unhealthy" in out and "its connection is unhealthy" in out, out[-3000:]
    assert "agent_api=healthy" in out, out[-3000:]
