"""agentopia.dtma.dtma_redeploy in real ansible-playbook runs against a real agent that a supervisor restarts.

The agent runs from `DTMA_HOME/current/bin/dtma-agent` (each release's binary is a shell script that execs the
real agent), under a small supervisor standing in for systemd's `Restart=always`: whenever the process exits it
starts `current/bin/dtma-agent` again, so a release switch takes effect the way it does on a droplet. There is no
systemd here, so the SSH rollback's `systemctl restart <service>` reaches a `systemctl` on the SSH session's PATH
that asks this supervisor to restart the agent (it kills the running process; the supervisor starts it again).
"""

from __future__ import annotations

import os
import signal

import pytest
import requests
from dtma_testing import BROKEN_RELEASE, Agent, Sshd, Supervisor, links, wait_until, write_release

MOD = "agentopia.dtma.dtma_redeploy"


def health(agent: Agent) -> dict | None:
    try:
        return requests.get(agent.url + "/health", timeout=2).json()
    except requests.RequestException:
        return None


@pytest.fixture
def supervised(tmp_path, docker_api):
    """(home, agent): an agent with DTMA_HOME whose releases 1.0.0 and 1.1.0 are real, current -> 1.0.0."""
    home = tmp_path / "dtma-home"
    write_release(home, "1.0.0")
    write_release(home, "1.1.0")
    write_release(home, "9.9.9-broken", BROKEN_RELEASE)
    os.symlink("releases/1.0.0", home / "current")
    agent = Agent(tmp_path, env={"DTMA_HOME": str(home)})
    supervisor = Supervisor(home, agent, tmp_path).start()
    try:
        if not wait_until(lambda: health(agent), 20):
            raise RuntimeError("the supervised agent did not answer: " + (tmp_path / "supervised-agent.log").read_text())
        yield home, agent, supervisor
    finally:
        supervisor.stop()
        agent.session.close()


@pytest.fixture
def sshd_with_systemctl(tmp_path, supervised):
    """A real sshd whose sessions find a `systemctl` that restarts the supervised agent."""
    _home, _agent, supervisor = supervised
    stub = tmp_path / "stub-bin"
    stub.mkdir()
    calls = tmp_path / "systemctl.calls"
    # like `systemctl restart`: returns once the old process is gone; CONT first so a hung (SIGSTOPped) agent dies too
    (stub / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                                    f'[ "$1" = restart ] || exit 0\npid=$(cat {supervisor.pidfile})\n'
                                    f'kill -CONT "$pid" 2>/dev/null; kill "$pid" 2>/dev/null\n'
                                    f'while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done\nexit 0\n')
    (stub / "systemctl").chmod(0o755)
    (tmp_path / "sshd").mkdir()
    os.makedirs("/run/sshd", exist_ok=True)
    server = Sshd(tmp_path / "sshd", extra_config=f"SetEnv PATH={stub}:/usr/sbin:/usr/bin:/sbin:/bin\n").start()
    server.calls = calls
    yield server
    server.stop()


def test_check_mode_changes_nothing(supervised, ansible_run):
    home, agent, supervisor = supervised
    before = health(agent)
    r = ansible_run([{MOD: {"mode": "restart"}}, {MOD: {"mode": "redeploy", "version": "1.1.0"}},
                     {MOD: {"mode": "redeploy", "version": before["version"]}}], agent=agent, check=True)
    assert r[0]["failed"] is False and r[0]["changed"] is True, r
    assert r[1]["failed"] is False and r[1]["changed"] is True, r
    assert r[2]["changed"] is False, r  # the agent already reports that version
    assert r[0]["before"]["boot_id"] == before["boot_id"] and r[0]["after"] == {}
    assert [s["step"] for s in r[1]["steps"]] == ["read health"]
    assert links(home) == {"current": "releases/1.0.0", "previous": None}
    assert health(agent)["boot_id"] == before["boot_id"] and supervisor.spawns == 1


def test_restart_comes_back_with_a_new_boot_id(supervised, ansible_run):
    home, agent, supervisor = supervised
    before = health(agent)
    r = ansible_run([{MOD: {"mode": "restart", "wait_timeout": 30}}], agent=agent)
    res = r[0]
    assert res["failed"] is False, r
    assert res["changed"] is True
    assert res["before"]["boot_id"] == before["boot_id"]
    assert res["after"]["boot_id"] and res["after"]["boot_id"] != before["boot_id"]
    assert res["after"]["boot_id"] == health(agent)["boot_id"]
    assert [s["step"] for s in res["steps"]] == ["read health", "request restart", "wait for a new agent process"]
    assert all({"step", "started", "duration_ms", "result"} <= set(s) for s in res["steps"])
    assert supervisor.spawns == 2
    assert links(home)["current"] == "releases/1.0.0"


def test_redeploy_switches_release_then_is_idempotent(supervised, ansible_run):
    home, agent, supervisor = supervised
    before = health(agent)
    task = {MOD: {"mode": "redeploy", "version": "1.1.0", "wait_timeout": 30}}
    r = ansible_run([task], agent=agent)
    res = r[0]
    assert res["failed"] is False, r
    assert res["changed"] is True
    assert links(home) == {"current": "releases/1.1.0", "previous": "releases/1.0.0"}
    assert res["release"]["current"] == "1.1.0" and res["release"]["previous"] == "1.0.0"
    assert res["after"]["boot_id"] != before["boot_id"] and res["after"]["boot_id"] == health(agent)["boot_id"]
    assert res["after"]["version"] == before["version"]  # both releases run the same agent package here

    new_boot = res["after"]["boot_id"]
    r = ansible_run([task], agent=agent)
    assert r[0]["failed"] is False and r[0]["changed"] is False, r
    assert r[0]["release"]["changed"] is False
    assert health(agent)["boot_id"] == new_boot, "an unchanged redeploy restarted the agent"
    assert supervisor.spawns == 2


def test_redeploy_unknown_version_fails_and_changes_nothing(supervised, ansible_run):
    home, agent, _supervisor = supervised
    before = health(agent)
    r = ansible_run([{MOD: {"mode": "redeploy", "version": "7.7.7"}}], agent=agent)
    assert r[0]["failed"] is True
    assert "7.7.7" in r[0]["msg"] and "404" in r[0]["msg"], r[0]["msg"]
    assert r[0]["changed"] is False
    assert links(home)["current"] == "releases/1.0.0" and health(agent)["boot_id"] == before["boot_id"]


def test_broken_release_is_rolled_back_over_ssh(supervised, sshd_with_systemctl, ansible_run):
    home, agent, _supervisor = supervised
    sshd = sshd_with_systemctl
    before = health(agent)
    r = ansible_run([{MOD: {"mode": "redeploy", "version": "9.9.9-broken", "wait_timeout": 5, "dtma_home": str(home),
                            **sshd.options(ssh_host_key_checking=False)}}], verbosity=3, agent=agent)
    res = r[0]
    assert res["failed"] is True, r
    assert res["changed"] is True and res["rolled_back"] is True
    assert "rolled back over SSH" in res["msg"] and "answers again" in res["msg"], res["msg"]
    # swapped as the API rollback does: previous names the failed release
    assert links(home) == {"current": "releases/1.0.0", "previous": "releases/9.9.9-broken"}
    now = health(agent)
    assert now and now["boot_id"] != before["boot_id"] and res["after"]["boot_id"] == now["boot_id"]
    assert [s["step"] for s in res["steps"]] == ["read health", "request redeploy", "wait for a new agent process",
                                                 "roll back through the API", "roll back over SSH",
                                                 "wait for the agent after the rollback"]
    assert "restart dtma" in sshd.calls.read_text()
    assert agent.token not in r.output


def test_broken_release_without_ssh_says_it_could_not_roll_back(supervised, ansible_run):
    home, agent, _supervisor = supervised
    r = ansible_run([{MOD: {"mode": "redeploy", "version": "9.9.9-broken", "wait_timeout": 3}}], agent=agent)
    res = r[0]
    assert res["failed"] is True and res["rolled_back"] is False, r
    assert "could not be rolled back" in res["msg"] and "over the host's connection" in res["msg"], res["msg"]
    assert links(home)["current"] == "releases/9.9.9-broken"
    os.replace(home / "previous", home / "current")  # restore by hand for the fixture's teardown
    assert agent.token not in r.output


def test_broken_release_with_rollback_false_is_left_alone(supervised, ansible_run):
    home, agent, _supervisor = supervised
    r = ansible_run([{MOD: {"mode": "redeploy", "version": "9.9.9-broken", "wait_timeout": 2, "rollback": False}}],
                    agent=agent)
    assert r[0]["failed"] is True and r[0]["rolled_back"] is False, r
    assert "nothing was rolled back" in r[0]["msg"]
    assert links(home)["current"] == "releases/9.9.9-broken"


def test_wrong_token_and_agent_down(supervised, ansible_run, make_agent):
    home, agent, _supervisor = supervised
    before = health(agent)
    wrong = "wrong-token-" + "z" * 30
    r = ansible_run([{MOD: {"mode": "restart"}}], verbosity=3, url=agent.url, token=wrong)
    assert r[0]["failed"] is True and "401" in r[0]["msg"] and "token" in r[0]["msg"], r[0]["msg"]
    assert r[0]["changed"] is False
    assert wrong not in r.output and agent.token not in r.output
    assert health(agent)["boot_id"] == before["boot_id"] and links(home)["current"] == "releases/1.0.0"

    down = make_agent()
    down.stop()
    r = ansible_run([{MOD: {"mode": "restart"}}], verbosity=3, url=down.url, token=down.token)
    assert r[0]["failed"] is True and "does not answer" in r[0]["msg"] and down.url in r[0]["msg"], r[0]["msg"]
    assert "restart its service on the host" in r[0]["msg"]
    assert "Traceback" not in r.output and down.token not in r.output


def test_restart_of_a_hung_agent_falls_back_to_ssh(supervised, sshd_with_systemctl, ansible_run):
    """The agent's process is stopped (SIGSTOP): its port is open but nothing answers. restart.yml's fallback."""
    _home, agent, supervisor = supervised
    sshd = sshd_with_systemctl
    hung = int(supervisor.pidfile.read_text())
    old_boot = health(agent)["boot_id"]
    os.kill(hung, signal.SIGSTOP)
    try:
        task = {MOD: {"mode": "restart", "timeout": 2, "wait_timeout": 20, **sshd.options(ssh_host_key_checking=False)}}
        r = ansible_run([dict(task, check_mode=True), task], agent=agent, verbosity=3)
    finally:
        try:
            os.kill(hung, signal.SIGCONT)
        except ProcessLookupError:
            pass
    check, res = r[0], r[1]
    assert check["changed"] is True and check["transport"] == "ssh" and check["failed"] is False, check
    assert res["failed"] is False and res["changed"] is True and res["transport"] == "ssh", res
    assert [s["step"] for s in res["steps"]] == ["read health", "restart over SSH", "wait for a new agent process"]
    now = health(agent)
    assert now["boot_id"] not in (None, old_boot) and res["after"]["boot_id"] == now["boot_id"]
    assert sshd.calls.read_text() == "reset-failed dtma\nrestart dtma\n"  # check mode sent nothing
    assert agent.token not in r.output


def test_restart_over_ssh_that_fails_says_so(supervised, ansible_run, dead_url):
    _home, agent, _supervisor = supervised
    r = ansible_run([{MOD: {"mode": "restart", "ssh_host": "127.0.0.1", "ssh_port": int(dead_url.rsplit(":", 1)[1]),
                            "ssh_connect_timeout": 2}}], url=dead_url, token=agent.token)
    assert r[0]["failed"] is True and r[0]["transport"] == "ssh", r
    assert "does not answer GET /health" in r[0]["msg"] and "the restart over SSH failed too" in r[0]["msg"], r[0]["msg"]
