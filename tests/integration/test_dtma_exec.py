"""dtma_exec through real ansible-playbook runs: the agent path, check mode, policy refusals, and the SSH
fallback to a real sshd when the agent is down."""

from __future__ import annotations

import copy
import json
import os
import time
import types
import uuid

import pytest

from dtma_agent.policy import DEFAULT_POLICY
from dtma_testing import AGENT_BIN, SANDBOX_ENV


def exec_task(**options) -> dict:
    return {"agentopia.dtma.dtma_exec": options}


def test_runs_through_the_agent(ansible_run, agent):
    r = ansible_run([exec_task(command="echo hello && echo world"), exec_task(argv=["echo", "a;b"])], agent=agent)
    first, second = r[0], r[1]
    assert first["changed"] is True and first["rc"] == 0 and first["transport"] == "agent"
    assert first["stdout_lines"] == ["hello", "world"] and first["timed_out"] is False and first["truncated"] is False
    assert second["stdout"] == "a;b\n" and second["cmd"] == "echo 'a;b'"


def test_blocked_command_fails_with_rule_and_reason(ansible_run, agent):
    r = ansible_run([exec_task(command="rm -rf /")], agent=agent)
    assert r[0]["failed"] is True and r[0]["allowed"] is False
    assert r[0]["rule"].startswith("deny.") and "policy" in r[0]["msg"] and r[0]["reason"] in r[0]["msg"]


def test_non_zero_exit_and_timeout_fail(ansible_run, agent):
    r = ansible_run([exec_task(command="ls /nonexistent-dtmatest"), exec_task(command="sleep 5", command_timeout=1)], agent=agent)
    assert r[0]["failed"] is True and r[0]["rc"] != 0 and "exited" in r[0]["msg"]
    assert r[1]["failed"] is True and r[1]["timed_out"] is True and "timed out" in r[1]["msg"]


def test_check_mode_returns_the_verdict_and_runs_nothing(ansible_run, agent):
    target = f"/tmp/dtmatest-exec-{uuid.uuid4().hex[:8]}"
    r = ansible_run([exec_task(command=f"mkdir -p {target}"), exec_task(command="shutdown -h now")], agent=agent, check=True)
    assert r[0]["changed"] is True and r[0]["allowed"] is True and r[0]["policy_source"] == "agent"
    assert "rc" not in r[0] and not os.path.exists(target)
    assert r[1]["failed"] is True and r[1]["allowed"] is False


def test_agent_down_without_fallback_fails_clearly(ansible_run, dead_url):
    r = ansible_run([exec_task(command="uptime")], defaults={"url": dead_url, "token": "x" * 32})
    assert r[0]["failed"] is True and "did not answer" in r[0]["msg"] and "fallback: ssh" in r[0]["msg"]


@pytest.fixture
def host(tmp_path, sshd):
    """The droplet side of the fallback: `dtma-agent exec` with an env file like the role writes (here on this
    machine, reached over the real sshd), using the test session's sandbox launcher."""
    env_file = tmp_path / "dtma.env"
    lines = {"DTMA_BEARER_TOKEN": uuid.uuid4().hex * 2, **SANDBOX_ENV}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def options(**extra):
        return {**sshd.options(ssh_known_hosts_file=str(sshd.known_hosts)), "ssh_agent_path": str(AGENT_BIN),
                "ssh_env_file": str(env_file), "fallback": "ssh", **extra}

    return types.SimpleNamespace(env_file=env_file, options=options)


def test_agent_down_falls_back_to_the_hosts_dtma_agent_over_real_ssh(ansible_run, dead_url, host):
    r = ansible_run([exec_task(command="echo via-ssh | tr a-z A-Z", **host.options()),
                     exec_task(argv=["id", "-un"], **host.options())],
                    defaults={"url": dead_url, "token": "x" * 32})
    assert r[0]["changed"] is True and r[0]["transport"] == "ssh" and r[0]["policy_source"] == "host", r[0]
    assert r[0]["stdout"] == "VIA-SSH\n" and r[0]["rc"] == 0
    assert r[1]["stdout"] == "dtma-exec\n", "the fallback runs in the same sandbox as the agent"


def test_ssh_fallback_runs_only_what_the_hosts_policy_allows(ansible_run, dead_url, host, tmp_path):
    marker = f"/etc/dtmatest-{uuid.uuid4().hex[:8]}"
    policy = copy.deepcopy(DEFAULT_POLICY)  # the host's own policy refuses uname, which the shipped one allows
    policy["executables"].pop("uname")
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    with open(host.env_file, "a", encoding="utf-8") as env:
        env.write(f"DTMA_POLICY_FILE={tmp_path / 'policy.json'}\n")
    r = ansible_run([exec_task(command=f"touch {marker}", **host.options()), exec_task(command="uname -a", **host.options()),
                     exec_task(command="uname -a", **host.options())],
                    defaults={"url": dead_url, "token": "x" * 32}, check=False)
    assert r[0]["failed"] is True and "nothing ran" in r[0]["msg"] and r[0]["transport"] == "ssh"
    assert r[1]["failed"] is True and "not in policy" in r[1]["reason"], r[1]
    assert not os.path.exists(marker)


def test_ssh_fallback_check_mode_asks_the_host(ansible_run, dead_url, host):
    target = f"/tmp/dtmatest-exec-{uuid.uuid4().hex[:8]}"
    r = ansible_run([exec_task(command=f"mkdir -p {target}", **host.options()), exec_task(command="reboot", **host.options())],
                    defaults={"url": dead_url, "token": "x" * 32}, check=True)
    assert r[0]["changed"] is True and r[0]["allowed"] is True and r[0]["policy_source"] == "host" and "rc" not in r[0]
    assert r[1]["failed"] is True and r[1]["allowed"] is False and not os.path.exists(target)


def test_ssh_fallback_checks_host_keys_by_default(ansible_run, dead_url, host):
    options = {k: v for k, v in host.options().items() if k != "ssh_known_hosts_file"}
    r = ansible_run([exec_task(command="uptime", **options),
                     exec_task(command="uptime", ssh_host_key_checking=False, **options)],
                    defaults={"url": dead_url, "token": "x" * 32})
    assert r[0]["failed"] is True and "SSH" in r[0]["msg"] and "not found in known_hosts" in r[0]["msg"]
    assert r[1]["rc"] == 0 and r[1]["transport"] == "ssh"


def test_wrong_token_and_no_token_in_output(ansible_run, agent):
    r = ansible_run([exec_task(command="uptime")], agent=agent, verbosity=3)
    assert r[0]["rc"] == 0 and agent.token not in r.output
    wrong = "w" * 40
    r = ansible_run([exec_task(command="uptime")], defaults={"url": agent.url, "token": wrong})
    assert r[0]["failed"] is True and "401" in r[0]["msg"] and "token" in r[0]["msg"]


def test_ssh_command_timeout_bounds_the_wait_for_the_host(ansible_run, dead_url, host, tmp_path):
    """ssh_command_timeout is how long the fallback waits for `dtma-agent exec` on the host, even below
    command_timeout (it used to be replaced by command_timeout + ssh_connect_timeout)."""
    hung = tmp_path / "hung-dtma-agent"  # a dtma-agent that never answers
    hung.write_text("#!/bin/sh\nexec sleep 25\n")
    hung.chmod(0o755)
    started = time.monotonic()
    r = ansible_run([exec_task(command="uptime", command_timeout=60,
                               **host.options(ssh_agent_path=str(hung), ssh_command_timeout=2))],
                    defaults={"url": dead_url, "token": "x" * 32})
    elapsed = time.monotonic() - started
    assert r[0]["failed"] is True and "timed out after 2s" in r[0]["msg"] and r[0]["transport"] == "ssh", r[0]
    assert elapsed < 20, f"the fallback waited {elapsed:.0f} s for a host that does not answer"
    # the module's own SSH options are deprecated: each one given says so
    deprecated = {d["msg"].split("'")[1]: (d["collection_name"], d["version"]) for d in r[0]["deprecations"]}
    assert deprecated["ssh_command_timeout"] == deprecated["ssh_host"] == ("agentopia.dtma", "1.0.0"), deprecated
