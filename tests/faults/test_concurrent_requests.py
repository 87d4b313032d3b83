"""A burst: 50 POST /ssh/execute and 10 POST /mcp/groups of the same group, all at once. No request may fail on
the agent's side (>= 500); executions may be refused as busy (429), group deploys serialize on the group's lock;
the group ends with exactly its 3 containers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from faults_env import assert_group_converged, group_payload, histogram, prefix, remove_group

pytestmark = pytest.mark.timeout(300)

EXECS, DEPLOYS = 50, 10
# 200: ran; 429: all execution slots busy (DTMA_EXEC_MAX_CONCURRENT), the documented answer
EXEC_OK = {200, 429}
DEPLOY_OK = {201}


def test_burst_of_execs_and_deploys_of_one_group(droplet, api):
    group_id = f"{prefix(droplet)}-burst"
    names = [f"{group_id}-{i}" for i in range(3)]
    payload = group_payload(group_id, names)
    headers = {"Authorization": f"Bearer {droplet.token}"}

    def call(kind: str) -> tuple[str, int, dict | str, float]:
        t0 = time.monotonic()
        path, body = (("/ssh/execute", {"command": "true", "timeout": 10000}) if kind == "exec"
                      else ("/mcp/groups", payload))
        try:
            r = requests.post(droplet.url + path, json=body, headers=headers, timeout=120)
            try:
                answer = r.json()
            except ValueError:
                answer = r.text[:500]
            return kind, r.status_code, answer, time.monotonic() - t0
        except requests.RequestException as exc:
            return kind, 0, str(exc), time.monotonic() - t0

    # the deploys interleaved among the execs
    kinds = ["deploy" if i % 6 == 0 else "exec" for i in range(EXECS + DEPLOYS)]
    assert (kinds.count("exec"), kinds.count("deploy")) == (EXECS, DEPLOYS), kinds
    try:
        with ThreadPoolExecutor(max_workers=60) as pool:
            results = list(pool.map(call, kinds))
        for kind in ("exec", "deploy"):
            print(f"{kind}: statuses {histogram([s for k, s, _a, _t in results if k == kind])}, slowest "
                  f"{max(t for k, _s, _a, t in results if k == kind):.2f} s")
        bad = [(k, s, a) for k, s, a, _t in results if s not in (EXEC_OK if k == "exec" else DEPLOY_OK)]
        assert not bad, f"{len(bad)} answers outside the expected statuses, e.g. {bad[:3]}"
        failed_runs = [a for k, s, a, _t in results if k == "exec" and s == 200 and a.get("exit_code") != 0]
        assert not failed_runs, f"`true` did not exit 0: {failed_runs[:3]}"
        assert any(k == "exec" and s == 200 for k, s, _a, _t in results), "no execution ran at all"
        assert_group_converged(api, droplet, group_id, names)
    finally:
        remove_group(droplet, group_id)
