"""The fault suite (tests/faults): the agent as the role installs it on a droplet of its own (tests/droplet_env.py), put
under faults (SIGKILL mid-deploy, a release that does not start, a full audit disk, a paused container, a burst of
concurrent requests), then judged from outside: the host's Docker engine, root inside the droplet, GET /health.

Environment:
  DTMA_FAULTS_KEEP=1   keep the droplet after the session and reuse it next time (development only)
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import docker
import pytest

import droplet_env
from droplet_env import Droplet
from dtma_testing import BUSYBOX

GROUP_LABEL = "agentopia.group_id"
KEPT_ASIDE = "-dtma-old-"   # a container the agent set aside during a recreate: <name>-dtma-old-<12 hex>
TIMINGS: dict = {}          # printed in the session summary


def _install(root: Path, keep: bool) -> Droplet:
    t0 = time.monotonic()
    d = droplet_env.install_with_mcp_group(root / "droplet", keep, "dtma-faults", "flt")
    TIMINGS["droplet install"] = time.monotonic() - t0
    return d


@pytest.fixture(scope="session")
def faults_droplet(tmp_path_factory):
    # a thread as in tests/confinement; it is not started earlier to overlap other suites, whose timing assertions
    # (e.g. forceRemove < 1.5 s) the extra load could break
    keep = os.environ.get("DTMA_FAULTS_KEEP") == "1"
    root = Path("/tmp/dtma-faults-keep") if keep else tmp_path_factory.mktemp("faults")
    yield from droplet_env.session_droplet(root, keep, _install, "flt")


@pytest.fixture
def droplet(faults_droplet, request):
    """The session's droplet, left healthy after each test (a test that breaks it fails its teardown)."""
    t0 = time.monotonic()
    yield faults_droplet
    TIMINGS[request.node.name] = time.monotonic() - t0
    faults_droplet.recover_agent()
    code, body = faults_droplet.health()
    assert code == 200 and body and body.get("status") == "ok", f"the agent is not healthy after the test: {code} {body}"


@pytest.fixture(scope="session")
def api() -> docker.APIClient:
    """The host's Docker engine: the one the droplet's agent manages through the mounted socket."""
    return docker.APIClient(version="auto")


def prefix(d: Droplet) -> str:
    """Every group and container name of this session starts with it (the session-end cleanup removes them)."""
    return f"flt{d.session}"


def server(name: str, env: dict | None = None) -> dict:
    """A stdio MCP server that only sleeps: cheap, starts in ~0.3 s, stops at once (the agent's default init)."""
    return {"instanceNameOnToolbox": name, "dockerImageUrl": BUSYBOX, "mcpTransportType": "stdio",
            "accountToolInstanceId": name, "environmentVariables": env or {},
            "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}}


def group_payload(group_id: str, names: list[str], env: dict | None = None, **options) -> dict:
    return {"groupId": group_id, "servers": [server(n, env) for n in names], "options": options}


def group_containers(api: docker.APIClient, group_id: str) -> list[dict]:
    """Every container labelled with the group (running or not), as the host's engine lists it."""
    return api.containers(all=True, filters={"label": f"{GROUP_LABEL}={group_id}"})


def names_of(containers: list[dict]) -> list[str]:
    return sorted(c["Names"][0].lstrip("/") for c in containers)


def assert_group_converged(api: docker.APIClient, d: Droplet, group_id: str, names: list[str],
                           env: dict | None = None) -> None:
    """Exactly the payload's containers, all running, nothing kept aside or left over (Docker is the state)."""
    found = group_containers(api, group_id)
    kept_aside = [n for n in names_of(found) if KEPT_ASIDE in n]
    assert not kept_aside, f"kept-aside containers left behind in group {group_id}: {kept_aside}"
    assert names_of(found) == sorted(names), (f"group {group_id}: containers {names_of(found)}, "
                                              f"expected exactly {sorted(names)}")
    not_running = {c["Names"][0]: c["State"] for c in found if c["State"] != "running"}
    assert not not_running, f"group {group_id}: containers not running: {not_running}"
    # a kept-aside container that lost its group label would escape the label filter: look by name too
    strays = [n for c in api.containers(all=True, filters={"name": prefix(d)}) for n in c["Names"]
              if KEPT_ASIDE in n]
    assert not strays, f"kept-aside containers of this session: {strays}"
    if env:
        for c in found:
            have = api.inspect_container(c["Id"])["Config"]["Env"] or []
            missing = [f"{k}={v}" for k, v in env.items() if f"{k}={v}" not in have]
            assert not missing, f"{c['Names'][0]} runs an old configuration: {missing} not in its env {have}"


def post_group(d: Droplet, payload: dict, timeout: float = 120) -> tuple[int, str]:
    return d.request("POST", "/mcp/groups", json=payload, timeout=timeout)


def remove_group(d: Droplet, group_id: str) -> None:
    d.request("DELETE", f"/mcp/groups/{group_id}", params={"forceRemove": "true"}, timeout=60)


def histogram(statuses: list[int]) -> dict:
    return dict(sorted(Counter(statuses).items()))


def summary(terminalreporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("faults: timings")
    for label, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{label:<40} {seconds:6.1f} s")
