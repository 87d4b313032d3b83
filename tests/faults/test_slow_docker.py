"""A slow Docker call (stopping a paused container: Docker waits the whole grace time) must not stall the agent:
health, status and exec keep answering promptly while it runs, and the stop itself ends with 200."""

from __future__ import annotations

import time

import pytest

from droplet_env import DOCKER, Background, sh
from faults_env import group_payload, post_group, prefix, remove_group

pytestmark = pytest.mark.timeout(300)

ROUNDS = 20
LIMIT_S = 2.0
STOP_TIMEOUT_S = 8


def test_requests_answer_while_a_stop_waits_on_a_paused_container(droplet):
    group_id = f"{prefix(droplet)}-slow"
    name = f"{group_id}-0"
    payload = group_payload(group_id, [name])
    # Docker 20.10 resumes a paused container to signal it, so with the agent's default init (which passes SIGTERM
    # on) the stop is quick; `sleep` as PID 1 ignores SIGTERM and Docker waits the whole grace time
    payload["servers"][0]["baseConfigOverrideJson"]["HostConfig"] = {"Init": False}
    code, text = post_group(droplet, payload)
    assert code == 201, f"deploying the group answered {code}: {text[:2000]}"
    try:
        sh([DOCKER, "pause", name])
        t0 = time.monotonic()
        stop = Background(droplet.request, "POST", f"/mcp/servers/{name}/stop?timeout={STOP_TIMEOUT_S}", 60)
        worst: dict = {}
        overlapped = 0
        time.sleep(0.5)  # the stop reaches Docker
        for _round in range(ROUNDS):
            overlapped += stop.is_alive()
            for label, call in (("GET /health", droplet.health),
                                ("GET /mcp/status", lambda: droplet.request("GET", "/mcp/status", timeout=10)),
                                ("POST /ssh/execute", lambda: droplet.execute("true"))):
                t = time.monotonic()
                code, body = call()
                took = time.monotonic() - t
                assert code == 200, f"{label} answered {code} during the stop: {str(body)[:500]}"
                if label == "POST /ssh/execute":
                    assert body.get("exit_code") == 0, f"`true` during the stop: {body}"
                worst[label] = max(worst.get(label, 0.0), took)
        code, text = stop.result(60)
        stop_s = time.monotonic() - t0
        slowest = {k: round(v, 3) for k, v in worst.items()}
        print(f"slowest answers while the stop ran: {slowest}; "
              f"the stop took {stop_s:.1f} s; {overlapped} rounds overlapped it")
        assert max(worst.values()) < LIMIT_S, f"an answer took {max(worst.values()):.2f} s (limit {LIMIT_S} s): {worst}"
        assert code == 200, f"the stop answered {code}: {text[:1000]}"
        assert stop_s >= STOP_TIMEOUT_S - 1, f"the stop took {stop_s:.1f} s: Docker did not wait, nothing was slow"
        assert overlapped >= ROUNDS // 2, f"only {overlapped} of {ROUNDS} rounds ran while the stop was waiting"
        state = sh([DOCKER, "inspect", "-f", "{{.State.Status}}", name]).stdout.strip()
        assert state == "exited", f"{name} is {state} after the stop"
    finally:
        sh([DOCKER, "unpause", name], check=False)
        remove_group(droplet, group_id)
