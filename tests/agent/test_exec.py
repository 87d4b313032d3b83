"""POST /ssh/execute: the policy decides, the executor runs argv (or sh -c for approved compound commands),
timeouts kill the whole process group, output is capped, the environment is scrubbed, every request is audited.

Dangerous commands are only ever sent with dry_run: true (or blocked by the route); none is executed.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import stat
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from dtma_agent.executor import Executor
from dtma_agent.policy import DEFAULT_POLICY

CORPUS = Path(__file__).parent / "policy_corpus"


def corpus(name: str) -> list[str]:
    return [line for line in (CORPUS / name).read_text().splitlines() if line.strip() and not line.startswith("#")]


# Routine commands that are safe to really run on any test host (read-only or scratch-only).
RUN_SAMPLE = ["uptime", "df -h", "free -m", "uname -a", "date", "hostname", "id", "ps aux | sort -k3 -nr | head -5",
              "cat /etc/os-release", "ls -la /tmp", "docker ps -a", "docker images", "docker stats --no-stream",
              "docker version --format '{{.Server.Version}}'", "echo hello && echo world", "mkdir -p /tmp/dtmatest-exec",
              "wc -l /etc/passwd", "grep -c root /etc/group", "ss -tln", "ip addr show"]


def execute(agent, **body):
    return agent.post("/ssh/execute", json=body)


@pytest.mark.parametrize("command", corpus("dangerous.txt"))
def test_dangerous_command_is_blocked_in_dry_run(agent, command):
    r = execute(agent, command=command, dry_run=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["allowed"] is False, f"allowed: {command!r}"
    assert body["rule"] and body["reason"]


def test_routine_commands_are_allowed_in_dry_run(agent):
    routine = corpus("routine.txt")
    denied = [c for c in routine if not execute(agent, command=c, dry_run=True).json()["allowed"]]
    assert len(routine) >= 60 and not denied, denied


@pytest.mark.parametrize("command", RUN_SAMPLE)
def test_routine_sample_really_runs(agent, command):
    r = execute(agent, command=command)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["exit_code"] == 0 and body["success"] is True, body
    assert set(body) >= {"success", "command", "exit_code", "stdout", "stderr", "duration_ms", "truncated",
                         "timed_out", "timestamp"}
    assert body["command"] == command and body["timed_out"] is False


def test_simple_command_runs_without_a_shell_and_compound_with_one(agent):
    assert execute(agent, command="echo plain").json()["shell"] is False
    assert execute(agent, argv=["echo", "a;b", "$(x)"]).json()["stdout"] == "a;b $(x)\n"  # argv is never parsed
    r = execute(agent, command="echo one | tr a-z A-Z").json()
    assert r["shell"] is True and r["stdout"] == "ONE\n"


def test_blocked_command_is_403_and_does_not_run(agent):
    marker = f"/etc/dtmatest-{uuid.uuid4().hex[:8]}"
    r = execute(agent, command=f"touch {marker}")
    assert r.status_code == 403
    body = r.json()
    assert body["success"] is False and body["rule"].startswith(("deny.", "default_deny")) and body["reason"]
    assert not os.path.exists(marker)
    r = execute(agent, command="frobnicate --now")
    assert r.status_code == 403 and r.json()["reason"] == "not in policy: frobnicate"
    assert execute(agent, argv=["rm", "-rf", "/"]).status_code == 403


def test_dry_run_never_runs_even_when_allowed(agent, tmp_path):
    target = tmp_path / "made-by-dry-run"
    r = execute(agent, command=f"mkdir -p {target}", dry_run=True)
    assert r.status_code == 200 and r.json()["allowed"] is True
    assert r.json()["commands"][0]["executable"] == "mkdir"
    assert not target.exists()


@pytest.mark.parametrize("body, field", [
    ({}, "command"),
    ({"command": "echo", "argv": ["echo"]}, "command"),
    ({"command": ""}, "command"),
    ({"argv": []}, "argv"),
    ({"argv": "echo hi"}, "argv"),
    ({"command": "echo", "timeout": 0}, "timeout"),
    ({"command": "echo", "timeout": 300001}, "timeout"),
    ({"command": "echo", "timeout": "soon"}, "timeout"),
    ({"command": "echo", "dry_run": "maybe"}, "dry_run"),
])
def test_bad_bodies_are_422_naming_the_field(agent, body, field):
    r = execute(agent, **body)
    assert r.status_code == 422, r.text
    assert field in r.json()["message"]


def _sleepers(tag: str) -> list:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and tag in " ".join(p.info["cmdline"])]


def test_timeout_kills_the_whole_process_group(agent):
    tag = f"{61 + uuid.uuid4().int % 1000 / 1000:.3f}"  # a unique sleep length to find leftovers by
    # sh -c inside a pipeline: the sleep is a grandchild of the shell the agent starts
    r = execute(agent, command=f"sh -c 'sleep {tag}; echo never' | cat", timeout=700)
    body = r.json()
    assert r.status_code == 200 and body["timed_out"] is True and body["success"] is False
    assert "never" not in body["stdout"]
    assert 600 <= body["duration_ms"] < 5000
    assert not _sleepers(tag), "a grandchild outlived the timeout"


def test_background_jobs_do_not_outlive_a_finished_command(sandbox_launcher, agent, tmp_path):
    # the policy refuses `&`; the executor still makes sure nothing of a finished command's group survives
    assert execute(agent, command="sleep 5 & echo started", dry_run=True).json()["allowed"] is False
    tag = f"{71 + uuid.uuid4().int % 1000 / 1000:.3f}"
    result = asyncio.run(Executor(str(sandbox_launcher.socket)).run(["sh", "-c", f"sleep {tag} & echo started"], timeout_s=10))
    assert result.stdout == "started\n" and result.timed_out is False
    assert not _sleepers(tag)


def test_a_cancelled_execution_leaves_nothing_running(sandbox_launcher, tmp_path):
    # a request the server cancels (shutdown, client gone) must not leave the command behind
    tag = f"{81 + uuid.uuid4().int % 1000 / 1000:.3f}"

    async def cancel_midway():
        task = asyncio.ensure_future(Executor(str(sandbox_launcher.socket)).run(["sh", "-c", f"sleep {tag}; true"], 30))
        await asyncio.sleep(0.5)
        assert _sleepers(tag), "the command never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    # SIGKILL went to the group when the task was cancelled; the kernel may take a moment to deliver it
    deadline = time.monotonic() + 5
    while _sleepers(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _sleepers(tag)


def test_a_command_that_ended_in_time_is_not_reported_as_timed_out(sandbox_launcher):
    # the command exits at once; a process it moved out of its session dies with the sandbox's PID namespace, so
    # nothing holds the pipes open and nothing is left running
    tag = f"{1.5 + uuid.uuid4().int % 1000 / 10000:.4f}"
    result = asyncio.run(Executor(str(sandbox_launcher.socket)).run(["sh", "-c", f"setsid sleep {tag} & sleep 0.1"], 0.3))
    assert (result.exit_code, result.timed_out) == (0, False)
    assert result.duration_ms < 1000
    assert not _sleepers(tag)


def test_a_running_command_does_not_block_other_requests(agent):
    # executions are event-driven on the agent's loop: /health answers while a command is still running
    tag = f"{2 + uuid.uuid4().int % 1000 / 1000:.3f}"
    finished = []
    runner = threading.Thread(target=lambda: finished.append(execute(agent, command=f"sleep {tag}").status_code))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not _sleepers(tag):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        assert agent.get("/health").status_code == 200
        assert not finished and _sleepers(tag), "/health waited for the command"
    finally:
        runner.join()
    assert finished == [200]


def test_a_long_command_is_checked_and_run(agent):
    # longer than what is parsed on the loop: checked in a worker thread, same verdict
    words = " ".join(f"w{i}" for i in range(120))
    body = execute(agent, command=f"echo {words}").json()
    assert len(words) > 256 and body["exit_code"] == 0 and body["stdout"] == words + "\n"
    body = execute(agent, command=f"echo {words}; rm -rf /", dry_run=True).json()
    assert body["allowed"] is False and body["rule"].startswith("deny.")


def test_output_flood_is_capped(make_agent):
    a = make_agent(env={"DTMA_EXEC_OUTPUT_CAP": "65536"})
    r = execute(a, command="seq 1 100000")  # about 590 KB
    body = r.json()
    assert body["truncated"] is True and body["exit_code"] == 0
    assert len(body["stdout"].encode()) <= 65536 and body["stdout"].startswith("1\n2\n3\n")


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_child_environment_is_scrubbed(make_agent, tmp_path, suffix):
    policy = copy.deepcopy(DEFAULT_POLICY)  # an operator policy (JSON or YAML) that lets `printenv` run
    policy["deny_executables"].pop("printenv")
    policy["executables"]["printenv"] = {"category": "system_read"}
    policy_file = tmp_path / f"policy.{suffix}"
    policy_file.write_text(json.dumps(policy) if suffix == "json" else yaml.safe_dump(policy))
    a = make_agent(env={"DTMA_POLICY_FILE": str(policy_file), "BACKEND_TO_DTMA_API_KEY": "k" + uuid.uuid4().hex * 2,
                        "AGENTOPIA_API_BASE_URL": "http://127.0.0.1:9", "OFFLINE_MODE": "true"})
    body = execute(a, command="printenv").json()
    assert body["exit_code"] == 0 and "PATH=" in body["stdout"]
    assert a.token not in body["stdout"]
    for secret_name in ("DTMA_BEARER_TOKEN", "BACKEND_TO_DTMA_API_KEY", "AGENTOPIA_API_BASE_URL"):
        assert secret_name not in body["stdout"]


def test_executor_passes_no_secret_to_a_real_child(sandbox_launcher, monkeypatch, tmp_path):
    monkeypatch.setenv("DTMA_BEARER_TOKEN", "t" * 40)
    monkeypatch.setenv("SOME_API_KEY", "k" * 40)
    result = asyncio.run(Executor(str(sandbox_launcher.socket)).run(["env"], timeout_s=10))
    assert result.exit_code == 0 and "t" * 40 not in result.stdout and "k" * 40 not in result.stdout


def test_concurrency_limit_answers_429(make_agent):
    a = make_agent(env={"DTMA_EXEC_MAX_CONCURRENT": "2"})
    started = threading.Barrier(3)
    results = []

    def slow():
        started.wait()
        results.append(execute(a, command="sleep 2").status_code)

    threads = [threading.Thread(target=slow) for _i in range(2)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.7)  # both slots are taken by now
    r = execute(a, command="echo third")
    for t in threads:
        t.join()
    assert r.status_code == 429 and r.headers.get("Retry-After")
    assert results == [200, 200]
    assert execute(a, command="echo later").status_code == 200


def test_a_missing_runtime_dir_is_503_and_runs_nothing(make_agent, tmp_path):
    """The command's filtered Docker socket cannot be opened (its runtime dir is gone): 503 naming the dir, no 500,
    and the command does not run without it."""
    marker = tmp_path / "ran"
    a = make_agent(env={"DTMA_RUNTIME_DIR": str(tmp_path / "gone")})
    r = execute(a, command=f"touch {marker}")
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "sandbox unavailable" and str(tmp_path / "gone") in r.json()["message"]
    assert not marker.exists()


def test_every_request_is_audited_without_the_token(make_agent, tmp_path):
    log_dir = tmp_path / "log"
    a = make_agent(env={"DTMA_LOG_DIR": str(log_dir)})
    execute(a, command="echo audited")
    execute(a, command="rm -rf /")
    execute(a, command="shutdown -h now", dry_run=True)
    execute(a, command=f"echo {a.token}")  # the token in a command is redacted in the trail
    lines = [json.loads(line) for line in (log_dir / "audit.log").read_text().splitlines()]
    verdicts = [entry["verdict"] for entry in lines]
    assert verdicts[:3] == ["executed", "blocked", "dry_run:blocked"]
    first = lines[0]
    assert first["token_id"] == "agent" and first["client"] == "127.0.0.1" and first["exit_code"] == 0
    assert first["rule"].startswith("allow.") and first["duration_ms"] is not None and first["time"]
    assert lines[1]["rule"].startswith("deny.") and lines[1]["exit_code"] is None
    text = (log_dir / "audit.log").read_text()
    assert a.token not in text and "***" in text
    assert stat.S_IMODE((log_dir / "audit.log").stat().st_mode) == 0o640
    recent = a.get("/diagnostics/logs?lines=50").json()["logs"]["audit"]
    assert any('"verdict":"blocked"' in line for line in recent)
    assert a.token not in a.log()
