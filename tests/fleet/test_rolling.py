"""Rolling restarts and redeploys on a fleet of three droplets (playbooks/restart.yml and redeploy.yml as an operator
runs them, on one inventory of the three): one host at a time, and a host that fails stops the rollout, so the
hosts after it are not touched. Judged from outside: GET /health (version, boot_id), systemd's MainPID and the
release links read as root inside each droplet."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from droplet_env import DOCKER, Droplet, sh
from fleet_env import HOSTS, TIMINGS, Fleet, write_inventory

pytestmark = pytest.mark.timeout(900)  # the session fixture installs three droplets first

HOME = "/opt/dtma"
NEW = "0.9.0"  # the release the fleet is redeployed to: this collection's sources built as that version
BROKEN = f"""#!/bin/sh
if [ "$1" = --version ]; then echo "dtma-agent {NEW}"; exit 0; fi
echo "release {NEW}: this agent does not start" >&2
exit 3
"""


def snapshot(d: Droplet) -> dict:
    """What tells a host's agent apart: its process (boot_id, MainPID), version and release links."""
    code, health = d.health()
    assert code == 200, f"{d.name}: /health answered {code} {health}"
    pid, restarts = d.agent_state()
    out = d.root(f"cd {HOME} && for l in current previous; do printf '%s=%s\\n' $l \"$(readlink $l)\"; done; "
                 f"ls {HOME}/releases").stdout.splitlines()
    links = dict(line.split("=", 1) for line in out if "=" in line)
    return {"boot_id": health["boot_id"], "version": health["version"], "pid": pid, "restarts": restarts,
            "current": links.get("current", ""), "previous": links.get("previous", ""),
            "releases": sorted(line for line in out if "=" not in line)}


def batches(out: str) -> list[list[str]]:
    """The hosts of each batch, in order, from ansible-playbook's output: one 'PLAY [...]' per batch, then the hosts
    whose results the batch printed."""
    chunks = re.split(r"^PLAY \[.*$", out, flags=re.M)[1:]
    return [sorted(set(re.findall(r"^(?:ok|changed|fatal|failed): \[(fleet-\d)", chunk, flags=re.M))) for chunk in chunks]


def broken_release(d: Droplet) -> None:
    """Release NEW on this host is one whose agent does not start: `bin/dtma-agent --version` answers (the role and
    the agent check it before they switch), serving exits at once. bin/python is there, so the role takes the
    release as installed (its venv and pip steps are `creates:` steps) and only checks the version."""
    release = f"{HOME}/releases/{NEW}"
    sh([DOCKER, "exec", "-i", d.name, "sh", "-c",
        f"mkdir -p {release}/bin && ln -sfn /usr/bin/python3 {release}/bin/python && "
        f"cat > {release}/bin/dtma-agent && chmod 755 {release}/bin/dtma-agent"], input=BROKEN)


def test_a_rolling_redeploy_stops_at_the_host_whose_release_does_not_start(fleet: Fleet, tmp_path):
    first, second, third = fleet.droplets
    before = {name: snapshot(d) for name, d in zip(HOSTS, fleet.droplets)}
    old = before[HOSTS[0]]["version"]
    assert all(s["version"] == old for s in before.values()), before
    broken_release(second)
    t0 = time.monotonic()
    # a private wheel cache: the build of NEW must not prune other builds from the shared one
    run = fleet.playbook("playbooks/redeploy.yml", "-e", json.dumps({
        "dtma_version": NEW, "dtma_stamp_version": True, "dtma_wait_timeout": 12,
        "dtma_wheel_cache_dir": str(tmp_path / "wheels")}), timeout=600)
    TIMINGS["redeploy.yml (3 hosts, the 2nd broken)"] = time.monotonic() - t0
    out = run.stdout + run.stderr
    after = {name: snapshot(d) for name, d in zip(HOSTS, fleet.droplets)}
    print(json.dumps({"before": before, "after": after}, indent=1))
    assert run.returncode != 0, f"the play did not fail:\n{out[-4000:]}"
    # one host per batch, and no batch after the failed one
    assert batches(out) == [[HOSTS[0]], [HOSTS[1]]], f"batches {batches(out)}:\n{out[-4000:]}"
    # the first host: on the new release, a new agent process
    assert after[HOSTS[0]]["version"] == NEW and after[HOSTS[0]]["boot_id"] != before[HOSTS[0]]["boot_id"], after
    assert after[HOSTS[0]]["current"] == f"releases/{NEW}", after[HOSTS[0]]
    assert after[HOSTS[0]]["previous"] == before[HOSTS[0]]["current"], after[HOSTS[0]]
    # the second: switched, did not come up, rolled back (a new process on the old release); previous names NEW
    assert "rolled back" in out and "answers again" in out, out[-4000:]
    assert after[HOSTS[1]]["version"] == old and after[HOSTS[1]]["boot_id"] != before[HOSTS[1]]["boot_id"], after
    assert after[HOSTS[1]]["current"] == before[HOSTS[1]]["current"], after[HOSTS[1]]
    assert after[HOSTS[1]]["previous"] == f"releases/{NEW}", after[HOSTS[1]]
    # the third: untouched - the same agent process, the old release, and not even the new release's files
    assert f"[{HOSTS[2]}]" not in out and f"{HOSTS[2]} " not in out, f"{HOSTS[2]} was touched:\n{out[-4000:]}"
    assert {k: after[HOSTS[2]][k] for k in ("boot_id", "pid", "restarts", "version", "current", "previous", "releases")} \
        == {k: before[HOSTS[2]][k] for k in ("boot_id", "pid", "restarts", "version", "current", "previous", "releases")}
    assert NEW not in after[HOSTS[2]]["releases"]
    for d in (first, second, third):
        assert d.token not in out
        assert d.healthy()


def test_a_canary_restart_then_a_rolling_restart_that_stops_at_a_hung_agent(fleet: Fleet, tmp_path):
    # the canary: one host, then the rest together; every agent restarted through its API
    before = {name: snapshot(d) for name, d in zip(HOSTS, fleet.droplets)}
    t0 = time.monotonic()
    run = fleet.playbook("playbooks/restart.yml", "-e", json.dumps({"dtma_serial": [1, "100%"]}))
    TIMINGS["restart.yml canary [1, 100%] (3 hosts)"] = time.monotonic() - t0
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert batches(out) == [[HOSTS[0]], HOSTS[1:]], f"batches {batches(out)}:\n{out[-4000:]}"
    assert out.count("restarted through the API") == 3, out[-4000:]
    middle = {name: snapshot(d) for name, d in zip(HOSTS, fleet.droplets)}
    assert all(middle[n]["boot_id"] != before[n]["boot_id"] for n in HOSTS), (before, middle)

    # the second host's agent hangs (SIGSTOP) and the fallback cannot log in over the host's connection (a key the
    # host does not know): it cannot be restarted, and the rollout stops there
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True, timeout=30)
    inventory = write_inventory(tmp_path / "fleet-stranger.yml", fleet.droplets,
                                # no ControlMaster: a connection an earlier play left open would log in anyway
                                {HOSTS[1]: {"ansible_ssh_private_key_file": str(stranger),
                                            "ansible_ssh_args": "-C -o ControlMaster=no"}})
    hung = fleet.droplets[1]
    hung.root("systemctl kill --signal=SIGSTOP dtma", check=True)
    try:
        t0 = time.monotonic()
        run = fleet.playbook("playbooks/restart.yml", "-e", json.dumps({"dtma_wait_timeout": 10}), inventory=inventory)
        TIMINGS["restart.yml serial 1 (2nd hung, cannot log in)"] = time.monotonic() - t0
    finally:
        hung.root("systemctl kill --signal=SIGCONT dtma")
    out = run.stdout + run.stderr
    after = {name: snapshot(d) for name, d in zip(HOSTS, fleet.droplets)}
    assert run.returncode != 0, out[-4000:]
    assert batches(out) == [[HOSTS[0]], [HOSTS[1]]], f"batches {batches(out)}:\n{out[-4000:]}"
    assert after[HOSTS[0]]["boot_id"] != middle[HOSTS[0]]["boot_id"]
    # the hung agent was neither restarted through the API nor over the connection: the same process, continued
    assert (after[HOSTS[1]]["boot_id"], after[HOSTS[1]]["pid"]) == (middle[HOSTS[1]]["boot_id"], middle[HOSTS[1]]["pid"])
    assert f"[{HOSTS[2]}]" not in out
    assert (after[HOSTS[2]]["boot_id"], after[HOSTS[2]]["pid"]) == (middle[HOSTS[2]]["boot_id"], middle[HOSTS[2]]["pid"])
    for d in fleet.droplets:
        assert d.token not in out
