"""A token the role generated lives on the host and is read back, never rotated: not when the controller's copy is
lost (as AWX loses a job's home after every job), and the playbooks reach the agent with it. The role refuses,
changing nothing, a copy it cannot write or one that differs from the host's token. Run on one droplet of the fleet
with its own inventory (scripts/demo.sh) and as AWX runs jobs: ansible-runner, a private data dir, the SSH key as a
machine credential, a fresh home per job. Judged from outside: the env file read as root, systemd's MainPID and
GET /health's boot_id."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ansible_runner
import pytest
import yaml

from droplet_env import REPO, Droplet
from fleet_env import HOSTS, TIMINGS, Fleet, host_vars

pytestmark = pytest.mark.timeout(900)  # the session fixture may install the droplets first

ENV_FILE = "/etc/dtma/dtma.env"
RESTARTED = "RUNNING HANDLER [agentopia.dtma.dtma : Restart dtma]"


def host_token(d: Droplet) -> str:
    return d.root(f"sed -n 's/^DTMA_BEARER_TOKEN=//p' {ENV_FILE}", check=True).stdout.strip()


def agent(d: Droplet) -> dict:
    """The agent process and the env file's owner and mode."""
    code, health = d.health()
    assert code == 200, health
    pid, _restarts = d.agent_state()
    env_file = d.root(f"stat -c '%a %U %G' {ENV_FILE}", check=True).stdout.strip()
    return {"boot_id": health["boot_id"], "pid": pid, "env_file": env_file}


@pytest.fixture
def droplet(fleet: Fleet) -> Droplet:
    """The fleet's last droplet, and its controller copy of the token put back after the test whatever happened."""
    d = fleet.host(HOSTS[-1])
    copy = d.state_dir / "demo" / "tokens" / "droplet-1.token"
    yield d
    copy.write_text(d.token + "\n")
    copy.chmod(0o600)


def test_a_lost_controller_copy_is_written_again_from_the_host_and_nothing_restarts(droplet):
    copy = droplet.state_dir / "demo" / "tokens" / "droplet-1.token"
    assert copy.read_text().strip() == droplet.token == host_token(droplet)
    before = agent(droplet)
    assert before["env_file"] == "640 root dtma", before
    copy.unlink()
    t0 = time.monotonic()
    run = droplet.playbook("playbooks/install.yml")
    TIMINGS["install.yml, the controller copy deleted"] = time.monotonic() - t0
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert copy.read_text().strip() == droplet.token, "the copy is not the host's token"
    assert copy.stat().st_mode & 0o777 == 0o600, oct(copy.stat().st_mode)
    assert host_token(droplet) == droplet.token
    assert agent(droplet) == before, "the agent was restarted (or its env file changed)"
    assert RESTARTED not in out
    assert droplet.token not in out


def test_the_role_refuses_a_copy_that_differs_or_cannot_be_written_and_changes_nothing(droplet):
    copy = droplet.state_dir / "demo" / "tokens" / "droplet-1.token"
    before = agent(droplet)
    other = "differs" + os.urandom(24).hex()
    copy.write_text(other + "\n")
    run = droplet.playbook("playbooks/install.yml")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-4000:]
    assert f"keeps a token (in {ENV_FILE}) that differs from the controller's copy {copy}" in out, out[-4000:]
    assert f"To keep the host's token, remove {copy}" in out and "set dtma_token to it for one run" in out
    assert copy.read_text().strip() == other, "the copy was overwritten"
    assert host_token(droplet) == droplet.token and agent(droplet) == before
    assert droplet.token not in out and other not in out

    copy.write_text(droplet.token + "\n")
    nowhere = "/proc/dtma-nowhere/droplet-1.token"
    run = droplet.playbook("playbooks/install.yml", "-e", f"dtma_token_file={nowhere}")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-4000:]
    assert f"dtma_token_file is {nowhere}, a copy of droplet-1's token on the controller, but the controller cannot " \
           "write there" in out, out[-4000:]
    assert "dtma_token_file: '' to keep the token on the host only" in out
    assert "TASK [agentopia.dtma.dtma : Install bubblewrap]" not in out and "TASK [agentopia.dtma.dtma : Write" not in out
    assert host_token(droplet) == droplet.token and agent(droplet) == before
    assert droplet.token not in out


def awx_job(fleet: Fleet, d: Droplet, root: Path, playbook: str, inventory_vars: dict) -> tuple:
    """One AWX job: ansible-runner with a private data dir whose inventory has the host and the role's variables, the
    machine credential's SSH key in env/ssh_key (ansible-runner hands it to ssh-agent), and a home of its own, empty
    (AWX throws a job's home away afterwards). No DTMA_* credential."""
    pdd = root / f"job-{len(list(root.glob('job-*'))) + 1}"
    for sub in ("inventory", "env", "home"):
        (pdd / sub).mkdir(parents=True)
    (pdd / "project").symlink_to(REPO)
    (pdd / "inventory" / "hosts.yml").write_text(yaml.safe_dump({"dtma_hosts": {"hosts": {HOSTS[-1]: inventory_vars}}}))
    (pdd / "env" / "ssh_key").write_text((d.state_dir / "demo" / "id_ed25519").read_text())
    env = {k: v for k, v in fleet.env().items() if k.startswith("ANSIBLE_")}
    env.update({"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(pdd / "home")})
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(env))
    # ansible-runner passes its own environment on to the job: no DTMA_* (a credential) nor ANSIBLE_* of the test run
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("DTMA_", "ANSIBLE_"))}
    try:
        t0 = time.monotonic()
        runner = ansible_runner.run(private_data_dir=str(pdd), playbook=playbook, quiet=True, timeout=300)
        TIMINGS[f"AWX job {playbook}"] = time.monotonic() - t0
    finally:
        os.environ.update(saved)
    return runner, runner.stdout.read(), pdd / "home"


@pytest.fixture
def short_tmp():
    """A private data dir root with a short path: ssh's control socket lives under the job's home, and a Unix socket
    path has at most 107 bytes (AWX's own are short: /runner)."""
    path = Path(tempfile.mkdtemp(prefix="dtma-awx-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_awx_jobs_keep_the_hosts_token_and_reach_the_agent_with_it(fleet: Fleet, droplet, short_tmp):
    """Each job starts with an empty home: no token file, no credential token. The install keeps the host's token
    (dtma_token_file: '' - no copy to lose) and restarts nothing; diagnostics and restart read the token from the
    host and reach the agent with it."""
    own = host_vars(droplet)
    inventory_vars = {k: own[k] for k in ("ansible_host", "ansible_port", "ansible_user", "ansible_python_interpreter",
                                          "ansible_ssh_common_args", "dtma_port", "dtma_backend_api_key")}
    inventory_vars.update({"dtma_generate_token": True, "dtma_token_file": "",
                           # the wheels the droplet was installed from (an execution environment would build them)
                           "dtma_wheel_cache_dir": str(Path.home() / ".cache" / "dtma" / "wheels")})
    before = agent(droplet)

    runner, out, home = awx_job(fleet, droplet, short_tmp, "playbooks/install.yml", inventory_vars)
    assert (runner.rc, runner.status) == (0, "successful"), out[-4000:]
    assert host_token(droplet) == droplet.token
    assert agent(droplet) == before, "the install job restarted the agent or changed its env file"
    assert RESTARTED not in out
    assert not (home / ".dtma").exists(), "a token copy was written under the job's home"
    assert droplet.token not in out

    runner, out, _home = awx_job(fleet, droplet, short_tmp, "playbooks/diagnostics.yml", inventory_vars)
    assert (runner.rc, runner.status) == (0, "successful"), out[-4000:]
    assert "Read the agent's token from the host" in out
    summary = [line for line in out.splitlines() if '"msg": "HEALTHY |' in line]
    assert len(summary) == 1 and "tools=" in summary[0], out[-4000:]  # GET /status answered: the token was accepted
    assert droplet.token not in out

    runner, out, _home = awx_job(fleet, droplet, short_tmp, "playbooks/restart.yml", inventory_vars)
    assert (runner.rc, runner.status) == (0, "successful"), out[-4000:]
    assert "restarted through the API" in out, out[-4000:]
    assert agent(droplet)["boot_id"] != before["boot_id"]
    assert host_token(droplet) == droplet.token
    assert droplet.token not in out
