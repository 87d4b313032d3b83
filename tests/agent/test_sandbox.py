"""The exec sandbox on its own (the layer below the policy): a real root launcher, real bubblewrap, the real
`dtma-exec` user. Commands here are sent straight to the launcher, bypassing the policy, so each test shows that
confinement holds even for a command the policy would (wrongly) allow."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
import subprocess
import uuid
from pathlib import Path

import psutil
import pytest

from dtma_agent.executor import Executor
from dtma_agent.policy import DEFAULT_POLICY
from dtma_testing import AGENT_BIN, wait_until


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    """A launcher of its own with a hidden secret dir and file, and small limits."""
    tmp = tmp_path_factory.mktemp("sandbox")
    secret_dir = Path(f"/tmp/dtmatest-secret-{uuid.uuid4().hex[:8]}")
    secret_dir.mkdir(mode=0o755)
    (secret_dir / "token").write_text("canary-dir-secret\n")
    (secret_dir / "token").chmod(0o644)  # readable by anyone: only the sandbox's mount hides it
    secret_file = Path(f"/tmp/dtmatest-secret-{uuid.uuid4().hex[:8]}.key")
    secret_file.write_text("canary-file-secret\n")
    secret_file.chmod(0o644)
    sock = tmp / "launcher.sock"
    proc = subprocess.Popen([str(AGENT_BIN), "sandbox-launcher", "--socket", str(sock), "--scratch", "/tmp",
                             "--scratch-size", "2M", "--max-file-size", "1M", "--max-procs", "64",
                             "--hide", str(secret_dir), "--hide", str(secret_file), "--docker-socket-dir", str(tmp)],
                            stdout=open(tmp / "launcher.log", "ab"), stderr=subprocess.STDOUT)
    assert wait_until(sock.exists, 10)
    yield {"socket": str(sock), "secret_dir": secret_dir, "secret_file": secret_file, "dir": tmp}
    proc.terminate()
    proc.wait(10)
    secret_file.unlink()
    for child in secret_dir.iterdir():
        child.unlink()
    secret_dir.rmdir()


def run(launcher, script: str, timeout: float = 10):
    return asyncio.run(Executor(launcher["socket"]).run(["bash", "-c", script], timeout))


def test_identity_has_no_groups_no_capabilities_and_no_new_privileges(launcher):
    result = run(launcher, "id -un; id -G | wc -w; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status")
    lines = result.stdout.splitlines()
    assert lines[0] == "dtma-exec" and lines[1] == "1", result
    status = dict(line.split(":\t") for line in lines[2:])
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"


def test_secrets_are_not_there_and_the_root_is_read_only(launcher):
    result = run(launcher, f"ls -A {launcher['secret_dir']}; cat {launcher['secret_file']}; ls -A /root /home; "
                           "touch /etc/dtmatest-x /usr/dtmatest-x 2>&1; echo ok > here && cat here")
    assert "canary" not in result.stdout + result.stderr
    assert result.stdout.count("Read-only file system") == 2
    assert result.stdout.rstrip().endswith("ok")
    assert not Path("/etc/dtmatest-x").exists() and not Path("/usr/dtmatest-x").exists()


def test_the_docker_socket_and_the_agents_runtime_are_absent(launcher):
    result = run(launcher, "test -e /var/run/docker.sock || test -e /run/docker.sock || echo no-docker; "
                           "ls -A /run | grep -v dbus | wc -l; env | sort")
    assert result.stdout.startswith("no-docker\n0\n"), result
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()[2:]}
    assert names <= {"PATH", "LANG", "LC_ALL", "HOME", "TERM", "PAGER", "SYSTEMD_PAGER", "SYSTEMD_COLORS", "USER",
                     "TZ", "PWD", "SHLVL", "_", "OLDPWD"}, names


def test_only_the_commands_own_processes_are_visible(launcher):
    result = run(launcher, f"ps -e -o pid= | wc -l; kill -0 {os.getpid()} 2>&1 || echo cannot-signal")
    count, *rest = result.stdout.split("\n", 1)
    assert int(count) <= 5 and "cannot-signal" in rest[0], result  # bwrap, bash, ps, wc (+ the subshell)


def test_nothing_outlives_the_command(launcher):
    tag = f"{700 + uuid.uuid4().int % 100}.{uuid.uuid4().int % 1000}"
    result = run(launcher, f"setsid sleep {tag} & nohup sleep {tag} >/dev/null 2>&1 & (sleep {tag} &) ; echo started")
    assert result.stdout == "started\n" and result.exit_code == 0
    assert wait_until(lambda: not [p for p in psutil.process_iter(["cmdline"]) if tag in " ".join(p.info["cmdline"] or [])], 5)


def test_scratch_is_size_capped_and_files_are_size_limited(launcher):
    full = run(launcher, "head -c 3000000 /dev/zero > big; echo rc=$?; df -k . | tail -1")
    assert "No space left" in full.stderr or "File size limit" in full.stderr or "rc=1" in full.stdout, full
    fsize = run(launcher, "head -c 1500000 /dev/zero > /tmp/f")
    assert fsize.exit_code != 0


def test_a_fork_storm_ends_as_an_error(launcher):
    result = run(launcher, "f() { f | f & }; f; sleep 1; echo survived", timeout=8)
    assert "Resource temporarily unavailable" in result.stderr or result.timed_out or result.exit_code != 0
    assert wait_until(lambda: not [p for p in psutil.process_iter(["username"]) if p.info["username"] == "dtma-exec"], 10)


def _raw_request(sock_path: str, payload: bytes, fds=()) -> dict:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(sock_path)
        socket.send_fds(conn, [payload], list(fds))
        conn.settimeout(10)
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


@pytest.mark.parametrize("payload, why", [
    (b"not json\n", "Expecting value"),
    (b'{"argv": [], "timeout_s": 5}\n', "argv"),
    (b'{"argv": ["id"], "timeout_s": 9999}\n', "timeout_s"),
    (b'{"argv": ["id"], "timeout_s": true}\n', "timeout_s"),
    (b'{"argv": ["id"], "timeout_s": 5, "docker_socket": "/var/run/docker.sock"}\n', "docker_socket"),
    (b'{"argv": ["id"], "timeout_s": 5}\n', "file descriptors"),  # no pipes passed
])
def test_the_launcher_refuses_bad_requests(launcher, payload, why):
    fds = []
    if b"file descriptors" not in why.encode() and why != "Expecting value":
        fds = list(os.pipe())
    try:
        reply = _raw_request(launcher["socket"], payload, fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert why in reply.get("error", ""), reply


def test_agent_without_launcher_answers_503_and_runs_nothing(make_agent, tmp_path):
    a = make_agent(env={"DTMA_SANDBOX_SOCKET": str(tmp_path / "absent.sock")})
    marker = tmp_path / "ran"
    r = a.post("/ssh/execute", json={"argv": ["touch", str(marker)]})
    assert r.status_code == 503 and r.json()["error"] == "sandbox unavailable", r.text
    assert "never run unconfined" in r.json()["message"] and not marker.exists()
    audit = [json.loads(line) for line in a.get("/diagnostics/logs", params={"lines": 50}).json()["logs"]["audit"]]
    assert any(entry["verdict"] == "rejected" and "sandbox" in (entry["reason"] or "") for entry in audit), audit


def test_docker_reaches_only_the_filter_and_its_denials_are_audited(make_agent, docker_api, name, tmp_path):
    # an operator policy that lets any docker command through, so that the filter alone has to stop `docker run`
    policy = copy.deepcopy(DEFAULT_POLICY)
    policy["executables"]["docker"] = {"category": "docker_any", "unknown_args": True}
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    a = make_agent(env={"DTMA_POLICY_FILE": str(tmp_path / "policy.json")})
    ctr = name("filtered")
    r = a.post("/ssh/execute", json={"argv": ["docker", "run", "--name", ctr, "local/busybox:latest", "true"]})
    assert r.status_code == 200 and r.json()["exit_code"] != 0 and "not allowed" in r.json()["stderr"], r.text
    audit = [json.loads(line) for line in a.get("/diagnostics/logs", params={"lines": 200}).json()["logs"]["audit"]]
    assert any(e["verdict"] == "docker_denied" and e["rule"] == "docker_filter" and ctr in e["command"]
               for e in audit), audit[-3:]
    assert not docker_api.containers(all=True, filters={"name": ctr})
    body = a.post("/ssh/execute", json={"argv": ["docker", "ps", "-a", "--format", "{{.Names}}"]}).json()
    assert body["exit_code"] == 0, body


def test_journalctl_reads_the_journal_through_the_agent_for_allowed_units_only(agent, sandbox_launcher):
    """The sandbox user cannot read the journal; journalctl there is the agent's client (journal.py)."""
    ok = agent.post("/ssh/execute", json={"argv": ["journalctl", "-u", "dtma", "-n", "5"]}).json()
    # this host may have no journal at all: what matters is that the agent's journalctl answered, not a denial
    assert "not readable for executed commands" not in ok["stderr"] and "not available" not in ok["stderr"], ok
    assert ok["exit_code"] == 0 or "No journal files" in ok["stderr"], ok
    # the journal endpoint on its own (the policy bypassed): only allowed units and selecting options
    executor = Executor(str(sandbox_launcher.socket), runtime_dir=str(sandbox_launcher.runtime_dir),
                        filter_uids=None, journal_units=("dtma",))
    for args in (["-u", "cron"], ["--file", "/etc/dtma/dtma.env", "-u", "dtma"], ["-u", "dtma", "--vacuum-size=1"],
                 ["-u", "dtma", "-f"], ["-u", "dtma", "-o", "export"], []):
        refused = asyncio.run(executor.run(["journalctl", *args], 10))
        assert refused.exit_code == 1 and refused.stderr.startswith("dtma: journalctl:"), (args, refused)


def test_journal_options_are_judged_by_an_allowlist():
    from dtma_agent.journal import check_args
    units = ("dtma", "docker")
    assert check_args(["-u", "dtma", "-n", "20", "--no-pager", "--since", "1 hour ago"], units) is None
    assert check_args(["--unit=docker.service", "-o", "json"], units) is None
    for bad in (["-u", "dtma", "--directory", "/"], ["-u", "dtma", "-D", "/"], ["-u", "dtma", "--root=/"],
                ["-u", "dtma", "--cursor-file", "/tmp/x"], ["-u", "dtma", "--flush"], ["-u", "dtma", "-n"],
                ["-u", "sshd-secret"], ["-n", "5"], "not a list", ["-u", "dtma", "--output=export"]):
        assert check_args(bad, units), bad
