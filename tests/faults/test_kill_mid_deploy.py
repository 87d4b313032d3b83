"""The agent SIGKILLed in the middle of a group deploy, and of a group recreate: systemd starts it again, the same
POST converges the group, and Docker then holds exactly the payload's containers, running, in the new
configuration, with nothing kept aside (`<name>-dtma-old-<12 hex>`) or left over."""

from __future__ import annotations

import time

import pytest

from droplet_env import Background
from dtma_testing import wait_until
from faults_env import (KEPT_ASIDE, assert_group_converged, group_containers, group_payload, names_of, post_group,
                        prefix, remove_group)

pytestmark = pytest.mark.timeout(300)

SERVERS = 10
# 5 waves of 2, each server settling 2 s: the deploy takes ~10 s, so a kill a few seconds in lands mid-way
OPTIONS = {"maxConcurrentDeployments": 2, "settleSeconds": 2}


def kill_agent_during(d, api, group_id: str, payload: dict, ready) -> list[str]:
    """POST the payload in a thread; SIGKILL the agent as soon as ready(containers, elapsed) (at the latest after
    8 s); prove the POST was cut, then that systemd (Restart=always) started a new agent. Returns the group's
    container names seen just before the kill."""
    assert d.root("systemctl show dtma -p Restart --value").stdout.strip() == "always", "the unit restarts on a kill"
    pid0, restarts0 = d.agent_state()
    post = Background(post_group, d, payload)
    t0 = time.monotonic()
    while True:
        at_kill = names_of(group_containers(api, group_id))
        if ready(at_kill, time.monotonic() - t0) or time.monotonic() - t0 > 8:
            break
        time.sleep(0.05)
    d.root("systemctl kill -s KILL dtma", check=True)
    print(f"containers of the group just before the kill: {at_kill}; just after: "
          f"{names_of(group_containers(api, group_id))}")
    code, text = post.result(60)
    assert code == 0, f"the POST ended before the kill ({code}: {text[:600]}), so the kill did not land mid-deploy"
    assert wait_until(d.healthy, 30, 0.2), "the agent did not answer /health within 30 s of the SIGKILL"
    pid1, restarts1 = d.agent_state()
    assert (restarts1, pid1 != pid0) == (restarts0 + 1, True), \
        f"systemd did not restart the agent: MainPID {pid0} -> {pid1}, NRestarts {restarts0} -> {restarts1}"
    return at_kill


def test_sigkill_mid_group_deploy_then_redeploy_converges(droplet, api):
    group_id = f"{prefix(droplet)}-kill"
    names = [f"{group_id}-{i}" for i in range(SERVERS)]
    payload = group_payload(group_id, names, **OPTIONS)
    try:
        at_kill = kill_agent_during(droplet, api, group_id, payload, lambda found, elapsed: elapsed >= 3)
        assert 0 < len(at_kill) < SERVERS, f"the kill did not land mid-deploy: {len(at_kill)} containers existed"
        code, text = post_group(droplet, payload)
        assert code == 201, f"the re-POST after the restart answered {code}: {text[:2000]}"
        assert_group_converged(api, droplet, group_id, names)
    finally:
        remove_group(droplet, group_id)


def test_sigkill_mid_group_recreate_then_redeploy_converges(droplet, api):
    group_id = f"{prefix(droplet)}-rec"
    names = [f"{group_id}-{i}" for i in range(SERVERS)]
    try:
        code, text = post_group(droplet, group_payload(group_id, names, {"FAULT_ROUND": "1"}, **OPTIONS))
        assert code == 201, f"the first deploy answered {code}: {text[:2000]}"
        first = {c["Id"] for c in group_containers(api, group_id)}
        changed = group_payload(group_id, names, {"FAULT_ROUND": "2"}, **OPTIONS)

        # kill while at least one old container is kept aside, some seconds in (several already recreated)
        def ready(found, elapsed):
            return elapsed >= 2 and any(KEPT_ASIDE in n for n in found)

        at_kill = kill_agent_during(droplet, api, group_id, changed, ready)
        assert any(KEPT_ASIDE in n for n in at_kill), f"no container was kept aside at the kill: {at_kill}"
        code, text = post_group(droplet, changed)
        assert code == 201, f"the re-POST after the restart answered {code}: {text[:2000]}"
        assert_group_converged(api, droplet, group_id, names, env={"FAULT_ROUND": "2"})
        survivors = first & {c["Id"] for c in group_containers(api, group_id)}
        assert not survivors, f"containers of the first configuration still in the group: {sorted(survivors)}"
    finally:
        remove_group(droplet, group_id)
