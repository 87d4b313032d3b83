"""Module tests: real `ansible-playbook` runs of the collection's modules against a real agent and real Docker.

`ansible_run(tasks, ...)` writes a one-play playbook on localhost whose connection options come from
`module_defaults: {group/agentopia.dtma.dtma: …}` (the action group), runs it, and returns every task's
registered result plus the play's output.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dtma_testing import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
from dtma_testing import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


class PlayResult:
    def __init__(self, rc: int, output: str, results: list[dict]):
        self.rc, self.output, self.results = rc, output, results

    def __getitem__(self, index: int) -> dict:
        return self.results[index]

    def __repr__(self):
        return f"PlayResult(rc={self.rc}, results={json.dumps(self.results, indent=1)[:4000]}, output=...{self.output[-3000:]})"


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory) -> Path:
    """The repository as agentopia.dtma on a collections path."""
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "agentopia").mkdir(parents=True)
    (root / "ansible_collections" / "agentopia" / "dtma").symlink_to(REPO)
    return root


@pytest.fixture
def ansible_run(collections_path, tmp_path):
    """ansible_run(tasks, agent=…, check=False, diff=True, env=None, defaults=None, verbosity=0) -> PlayResult.

    Every task gets `register` and `ignore_errors: true`, so failures come back as results to assert on.
    `defaults` (dict) replaces the connection defaults taken from `agent` (url, token)."""
    counter = {"n": 0}

    def run(tasks: list[dict], agent=None, check: bool = False, diff: bool = True, env: dict | None = None,
            defaults: dict | None = None, verbosity: int = 0) -> PlayResult:
        counter["n"] += 1
        out_file = tmp_path / f"results-{counter['n']}.json"
        play_tasks = []
        for i, task in enumerate(tasks):
            play_tasks.append({**task, "register": f"_r{i}", "ignore_errors": True})
        collected = "{{ [" + ", ".join(f"_r{i} | default({{}})" for i in range(len(tasks))) + "] | to_json }}"
        play_tasks.append({"name": "collect results", "ansible.builtin.copy": {"content": collected, "dest": str(out_file)},
                           "check_mode": False, "diff": False})
        # the token reaches the play through the environment: ansible prints a failed task's playbook lines
        connection = (defaults if defaults is not None else
                      {"url": agent.url, "token": "{{ lookup('ansible.builtin.env', 'DTMA_TEST_TOKEN') }}"} if agent else {})
        play = [{"name": "module test", "hosts": "localhost", "gather_facts": False, "check_mode": check, "diff": diff,
                 "module_defaults": {"group/agentopia.dtma.dtma": connection}, "tasks": play_tasks}]
        playbook = tmp_path / f"play-{counter['n']}.yml"
        playbook.write_text(yaml.safe_dump(play, sort_keys=False))
        run_env = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "ANSIBLE_"))}
        run_env.update({"ANSIBLE_COLLECTIONS_PATH": str(collections_path), "ANSIBLE_NOCOLOR": "1",
                        "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
                        "ANSIBLE_PYTHON_INTERPRETER": sys.executable, **(env or {})})
        if agent is not None:
            run_env["DTMA_TEST_TOKEN"] = agent.token
        cmd = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(playbook)] + (["-" + "v" * verbosity] if verbosity else [])
        done = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=600, check=False)
        output = done.stdout + done.stderr
        results = json.loads(out_file.read_text()) if out_file.exists() else []
        return PlayResult(done.returncode, output, results)

    return run


class Sshd:
    """A real OpenSSH server on 127.0.0.1 accepting one client key for root."""

    def __init__(self, tmp: Path):
        self.tmp, self.host, self.user = tmp, "127.0.0.1", "root"
        self.port = free_port()
        self.key_file = tmp / "client_key"
        self.known_hosts = tmp / "known_hosts"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Sshd":
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
        subprocess.run(keygen + ["-f", str(self.tmp / "host_key")], check=True)
        subprocess.run(keygen + ["-f", str(self.key_file)], check=True)
        (self.tmp / "authorized_keys").write_text((self.tmp / "client_key.pub").read_text())
        host_pub = (self.tmp / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        config = self.tmp / "sshd_config"
        config.write_text(f"""HostKey {self.tmp / 'host_key'}
AuthorizedKeysFile {self.tmp / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PidFile {self.tmp / 'sshd.pid'}
""")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config), "-p", str(self.port),
                                      "-o", f"ListenAddress={self.host}"], stdout=subprocess.DEVNULL,
                                     stderr=open(self.tmp / "sshd.log", "ab"))

        def listening():
            with socket.socket() as s:
                return s.connect_ex((self.host, self.port)) == 0
        if not wait_until(listening, 10):
            raise RuntimeError("sshd did not start: " + (self.tmp / "sshd.log").read_text())
        return self

    def options(self, **extra) -> dict:
        """The modules' ssh_* options for this server (host keys checked against its known_hosts)."""
        return {"ssh_host": self.host, "ssh_port": self.port, "ssh_user": self.user, "ssh_key_file": str(self.key_file),
                "ssh_known_hosts_file": str(self.known_hosts), **extra}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture
def dead_url() -> str:
    """A URL where no agent listens."""
    return f"http://127.0.0.1:{free_port()}"
