"""The fleet suite (tests/fleet): three droplets (tests/droplet_env.py: the agent installed by scripts/demo.sh with the
real role), installed one after another (the role's wheel cache makes the later installs faster), and one inventory
that holds all three as the operator's fleet. Rolling restarts and redeploys run against that inventory; the token
tests use one droplet with its own inventory and with AWX-like jobs (ansible-runner, an empty home each time).

Environment:
  DTMA_FLEET_KEEP=1   keep the droplets after the session and reuse them next time (development only)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import yaml

import droplet_env
from droplet_env import REPO, Droplet
from dtma_testing import remove_prefixed

SIZE = 3
HOSTS = [f"fleet-{i}" for i in range(1, SIZE + 1)]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
TIMINGS: dict = {}  # printed in the session summary


@dataclass
class Fleet:
    droplets: list[Droplet]
    inventory: Path           # every droplet as one host of dtma_hosts (HOSTS, in this order)
    root: Path

    def host(self, name: str) -> Droplet:
        return self.droplets[HOSTS.index(name)]

    def env(self) -> dict:
        """ansible-playbook's environment: the first droplet's collection path (every demo dir links the repository)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "ANSIBLE_"))}
        return {**base, "ANSIBLE_COLLECTIONS_PATH": str(self.droplets[0].state_dir / "demo" / "collections"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_LOCALHOST_WARNING": "0"}

    def playbook(self, playbook: str, *args: str, inventory: Path | None = None,
                 timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory or self.inventory), str(REPO / playbook), *args],
                              cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False)


def prefix(d: Droplet) -> str:
    """Every group and container of this droplet starts with it (the session-end cleanup removes them)."""
    return f"flx{d.session}"


def _install(root: Path, index: int, keep: bool) -> Droplet:
    t0 = time.monotonic()
    d = droplet_env.install_with_mcp_group(root / f"droplet-{index}", keep, "dtma-fleet", "flx")
    TIMINGS[f"install {HOSTS[index]}"] = time.monotonic() - t0
    return d


def host_vars(d: Droplet) -> dict:
    """What the droplet's own inventory (scripts/demo.sh) and vars file give its one host, as that host's variables:
    the same role variables, so the role renders the same files (and restarts nothing) in the fleet's runs."""
    inv = yaml.safe_load((d.state_dir / "demo" / "inventory.yml").read_text())["dtma_hosts"]
    (only,) = inv["hosts"].values()
    return {**inv["vars"], **only, **json.loads((d.state_dir / "vars.yml").read_text())}


def write_inventory(path: Path, droplets: list[Droplet], overrides: dict | None = None) -> Path:
    """One inventory for the fleet; `overrides` maps host names to variables that replace its own."""
    hosts = {name: {**host_vars(d), **(overrides or {}).get(name, {})} for name, d in zip(HOSTS, droplets)}
    path.write_text(yaml.safe_dump({"dtma_hosts": {"hosts": hosts}}, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    keep = os.environ.get("DTMA_FLEET_KEEP") == "1"
    root = Path("/tmp/dtma-fleet-keep") if keep else tmp_path_factory.mktemp("fleet")
    droplet_env.ensure_images()
    droplets: list[Droplet] = []
    try:
        # one after another: installs share the controller's wheel cache, and two cores do not make them faster
        for index in range(SIZE):
            droplets.append(_install(root, index, keep))
    except Exception as exc:  # noqa: BLE001 - the install's own message says what failed
        for d in droplets:
            droplet_env.remove(d)
        pytest.fail(str(exc))
    f = Fleet(droplets=droplets, inventory=write_inventory(root / "fleet.yml", droplets), root=root)
    yield f
    api = docker.APIClient(version="auto")
    for d in droplets:
        if not keep:
            droplet_env.remove(d)
        remove_prefixed(api, prefix(d))


def summary(terminalreporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("fleet: timings")
    for label, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{label:<50} {seconds:6.1f} s")
