"""Where the agent's token comes from, with real ansible-playbook runs on localhost standing in for the host (its
"env file" under a temporary dtma_config_dir, the controller's home a temporary directory):
- the role (tasks_from: token, the token part of its preflight): the host's token is kept and a missing controller
  copy written from it; a copy that differs, or cannot be written, is refused with a message and nothing changes;
  without a host token the copy is installed, else a new token (stored nowhere with dtma_token_file: '');
- the playbooks (playbooks/vars/connection.yml): dtma_token > token file > DTMA_BEARER_TOKEN > the host's token,
  and diagnostics.yml reaching a real agent with the token read from the host only.
The droplet tests (tests/fleet/test_token_on_host.py) run the same against the installed service."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


class Host:
    """localhost as the managed host: its agent env file under `config`, the controller's home under `home`."""

    def __init__(self, root: Path, collections_path: Path):
        self.root, self.collections_path = root, collections_path
        self.config, self.home, self.result = root / "etc-dtma", root / "home", root / "result.token"
        self.config.mkdir()
        self.home.mkdir()
        self.copy = self.home / ".dtma" / "tokens" / "localhost.token"

    def keep(self, token: str) -> None:
        """The host keeps `token` as the role writes it (DTMA_BEARER_TOKEN among the other variables)."""
        env = self.config / "dtma.env"
        env.write_text(f"# Ansible managed\nDTMA_BEARER_TOKEN={token}\nDTMA_HOST=0.0.0.0\nDTMA_PORT=30000\n")
        env.chmod(0o640)

    def run(self, play: list, *args: str, env: dict | None = None) -> tuple[int, str]:
        path = self.root / "play.yml"
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "ANSIBLE_"))}
        base.update({"HOME": str(self.home), "ANSIBLE_COLLECTIONS_PATH": str(self.collections_path),
                     "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", **(env or {})})
        done = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", str(path),
                               "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"dtma_config_dir={self.config}",
                               *args], env=base, capture_output=True, text=True, timeout=300, check=False)
        return done.returncode, done.stdout + done.stderr

    def role_token(self, *args: str) -> tuple[int, str]:
        """The role's token tasks with dtma_generate_token; the token they settle on is written to self.result."""
        self.result.unlink(missing_ok=True)
        tasks = [{"name": "The role's token",
                  "ansible.builtin.include_role": {"name": "agentopia.dtma.dtma", "tasks_from": "token"}},
                 {"name": "Save it", "no_log": True,
                  "ansible.builtin.copy": {"content": "{{ __dtma_token }}", "dest": str(self.result), "mode": "0600"}}]
        return self.run([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], "-e", "dtma_generate_token=true",
                        *args)


@pytest.fixture
def host(tmp_path, collections_path) -> Host:
    return Host(tmp_path, collections_path)


def token() -> str:
    return secrets.token_hex(32)


def test_the_hosts_token_is_kept_and_a_missing_copy_written_from_it(host):
    kept = token()
    host.keep(kept)
    rc, out = host.role_token()
    assert rc == 0, out
    assert host.result.read_text() == kept
    assert host.copy.read_text().strip() == kept and host.copy.stat().st_mode & 0o777 == 0o600
    assert host.copy.parent.stat().st_mode & 0o777 == 0o700
    assert kept not in out
    # again: nothing to do (the one change is the test's own "Save it")
    rc, out = host.role_token()
    assert rc == 0 and host.result.read_text() == kept and out.count("changed: [localhost]") == 1, out


def test_a_copy_that_differs_from_the_hosts_token_is_refused_and_nothing_changes(host):
    kept, other = token(), token()
    host.keep(kept)
    host.copy.parent.mkdir(parents=True)
    host.copy.write_text(other + "\n")
    rc, out = host.role_token()
    assert rc != 0 and not host.result.exists(), out
    assert (f"localhost keeps a token (in {host.config}/dtma.env) that differs from the controller's copy {host.copy}. "
            "Nothing was changed: a host's token is replaced only when dtma_token says so.") in out, out
    assert host.copy.read_text().strip() == other
    assert kept not in out and other not in out


@pytest.mark.parametrize("host_keeps", [True, False])
def test_a_copy_that_cannot_be_written_is_refused_and_nothing_changes(host, host_keeps):
    if host_keeps:
        host.keep(token())
    nowhere = "/proc/dtma-nowhere/localhost.token"
    rc, out = host.role_token("-e", f"dtma_token_file={nowhere}")
    assert rc != 0 and not host.result.exists(), out
    assert f"dtma_token_file is {nowhere}, a copy of localhost's token on the controller, but the controller cannot write " \
           "there" in out, out
    assert "Set dtma_token_file to a writable path on the controller, or dtma_token_file: '' to keep the token on the " \
           "host only" in out


def test_a_host_without_a_token_gets_the_copy_else_a_new_token(host):
    preset = token()
    host.copy.parent.mkdir(parents=True)
    host.copy.write_text(preset + "\n")
    rc, out = host.role_token()
    assert rc == 0 and host.result.read_text() == preset, out
    host.copy.unlink()
    rc, out = host.role_token()
    new = host.result.read_text()
    assert rc == 0 and len(new) == 64 and new.isalnum() and new != preset, out
    assert host.copy.read_text().strip() == new and host.copy.stat().st_mode & 0o777 == 0o600
    assert new not in out


def test_no_copy_wanted_generates_a_token_stored_nowhere_on_the_controller(host):
    rc, out = host.role_token("-e", "dtma_token_file=")
    assert rc == 0 and len(host.result.read_text()) == 64, out
    assert not (host.home / ".dtma").exists()
    # with a token on the host, no copy is written either
    host.keep(token())
    rc, out = host.role_token("-e", "dtma_token_file=")
    assert rc == 0 and not (host.home / ".dtma").exists(), out


def test_a_given_token_replaces_the_hosts(host):
    host.keep(token())
    given = token()
    rc, out = host.role_token("-e", f"dtma_token={given}")
    assert rc == 0 and host.result.read_text() == given, out
    assert re.search(r"Look for the agent's env file on the host\] \*+\nskipping", out), out  # not even read
    assert not host.copy.exists()


SOURCE_PLAY = [{"hosts": "localhost", "gather_facts": False, "vars_files": [str(REPO / "playbooks/vars/connection.yml")],
                "tasks": [{"name": "Source", "ansible.builtin.debug": {"msg": "source={{ __dtma_token_source }}"}}]}]


@pytest.mark.parametrize("args, env, home_copy, expected", [
    (["-e", "dtma_token=given-token-0123456789abcdef"], {"DTMA_BEARER_TOKEN": "x" * 32}, True, "var"),
    (["-e", "dtma_token_file=/some/where.token"], {"DTMA_BEARER_TOKEN": "x" * 32}, False, "file"),
    ([], {"DTMA_BEARER_TOKEN": "x" * 32}, True, "file"),
    ([], {"DTMA_BEARER_TOKEN": "x" * 32}, False, "env"),
    (["-e", "dtma_token_file="], {"DTMA_BEARER_TOKEN": "x" * 32}, True, "env"),
    (["-e", "dtma_token_file="], {}, True, "host"),
    ([], {}, False, "host"),
    (["-e", "dtma_token_from_host=false"], {}, False, "none"),
])
def test_the_playbooks_token_sources_in_order(host, args, env, home_copy, expected):
    if home_copy:
        host.copy.parent.mkdir(parents=True)
        host.copy.write_text(token())
    rc, out = host.run(SOURCE_PLAY, *args, env=env)
    assert rc == 0 and f'"msg": "source={expected}"' in out, out


def test_a_playbook_says_what_to_set_when_no_source_has_a_token(host, dead_url):
    rc, out = host.run([{"import_playbook": str(REPO / "playbooks/diagnostics.yml")}],
                       "-e", "dtma_target=localhost", "-e", f"dtma_url={dead_url}")
    assert rc != 0, out
    assert (f"no token for the agent on localhost: dtma_token, a token file (dtma_token_file, "
            f"~/.dtma/tokens/localhost.token) and DTMA_BEARER_TOKEN give none, and the host keeps none in "
            f"{host.config}/dtma.env") in out, out
    assert "TASK [Gather health and status]" not in out


def test_diagnostics_reaches_the_agent_with_the_token_the_host_keeps(host, agent):
    """No token variable, file or credential: the token comes from the host's env file only."""
    host.keep(agent.token)
    rc, out = host.run([{"import_playbook": str(REPO / "playbooks/diagnostics.yml")}],
                       "-e", "dtma_target=localhost", "-e", f"dtma_url={agent.url}")
    assert rc == 0, out
    assert "TASK [agentopia.dtma.dtma : Read the agent's env file on the host]" in out
    assert '"msg": "HEALTHY |' in out and "tools=" in out, out  # GET /status answered: the token was accepted
    assert agent.token not in out
