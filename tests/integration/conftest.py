"""Module tests: real `ansible-playbook` runs of the collection's modules against a real agent and real Docker.

`ansible_run(tasks, ...)` writes a one-play playbook on localhost whose connection options come from
`module_defaults: {group/agentopia.dtma.dtma: …}` (the action group), runs it, and returns every task's
registered result plus the play's output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dtma_testing import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
from dtma_testing import Sshd, free_port

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
    """ansible_run(tasks, agent=…, check=False, diff=True, env=None, defaults=None, verbosity=0, url=None, token=None)
    -> PlayResult.

    Every task gets `register` and `ignore_errors: true`, so failures come back as results to assert on.
    `url` and `token` override the agent's (a wrong token, an agent that is down); `defaults` (dict) replaces the
    connection defaults altogether."""
    counter = {"n": 0}

    def run(tasks: list[dict], agent=None, check: bool = False, diff: bool = True, env: dict | None = None,
            defaults: dict | None = None, verbosity: int = 0, url: str | None = None, token: str | None = None) -> PlayResult:
        counter["n"] += 1
        out_file = tmp_path / f"results-{counter['n']}.json"
        play_tasks = []
        for i, task in enumerate(tasks):
            play_tasks.append({**task, "register": f"_r{i}", "ignore_errors": True})
        collected = "{{ [" + ", ".join(f"_r{i} | default({{}})" for i in range(len(tasks))) + "] | to_json }}"
        play_tasks.append({"name": "collect results", "ansible.builtin.copy": {"content": collected, "dest": str(out_file)},
                           "check_mode": False, "diff": False})
        # the token reaches the play through the environment: ansible prints a failed task's playbook lines
        url = url or (agent.url if agent else None)
        token = token if token is not None else (agent.token if agent else None)
        connection = (defaults if defaults is not None else
                      {"url": url, "token": "{{ lookup('ansible.builtin.env', 'DTMA_TEST_TOKEN') }}"} if url else {})
        play = [{"name": "module test", "hosts": "localhost", "gather_facts": False, "check_mode": check, "diff": diff,
                 "module_defaults": {"group/agentopia.dtma.dtma": connection}, "tasks": play_tasks}]
        playbook = tmp_path / f"play-{counter['n']}.yml"
        playbook.write_text(yaml.safe_dump(play, sort_keys=False))
        run_env = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "ANSIBLE_"))}
        run_env.update({"ANSIBLE_COLLECTIONS_PATH": str(collections_path), "ANSIBLE_NOCOLOR": "1",
                        "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
                        "ANSIBLE_PYTHON_INTERPRETER": sys.executable, **(env or {})})
        if token is not None:
            run_env["DTMA_TEST_TOKEN"] = token
        cmd = [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(playbook)] + (["-" + "v" * verbosity] if verbosity else [])
        done = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=600, check=False)
        output = done.stdout + done.stderr
        results = json.loads(out_file.read_text()) if out_file.exists() else []
        return PlayResult(done.returncode, output, results)

    return run


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real sshd for the SSH fallbacks; pass ssh_known_hosts_file=str(sshd.known_hosts) to verify its key."""
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture
def dead_url() -> str:
    """A URL where no agent listens."""
    return f"http://127.0.0.1:{free_port()}"
