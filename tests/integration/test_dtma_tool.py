"""agentopia.dtma.dtma_tool in real ansible-playbook runs against a real agent and real Docker."""

from __future__ import annotations

from dtma_testing import BUSYBOX, free_port

SLEEP = {"Cmd": ["sleep", "3600"]}
MOD = "agentopia.dtma.dtma_tool"


def spec(name: str, **options) -> dict:
    return {"name": name, "image": BUSYBOX, "account_tool_instance_id": "acct-it", "config": SLEEP,
            "stop_timeout": 0, **options}


def inspect(docker_api, name: str) -> dict:
    return docker_api.inspect_container(name)


def exists(docker_api, name: str) -> bool:
    return bool(docker_api.containers(all=True, filters={"name": f"^/{name}$"}))


def test_four_steps_create_check_apply_rerun(agent, ansible_run, docker_api, cleanup, name):
    n = name("tool")
    cleanup.append(n)
    task = [{MOD: spec(n)}]

    r = ansible_run(task, agent=agent, check=True)
    assert r[0]["failed"] is False, r
    assert r[0]["changed"] is True and r[0]["actions"] == ["created"]
    assert r[0]["tool"] is None and r[0]["plan"]["action"] == "create"
    assert r[0]["diff"]["before"] == {"state": "absent"}
    assert r[0]["diff"]["after"]["state"] == "running" and r[0]["diff"]["after"]["image"] == BUSYBOX
    assert not exists(docker_api, n), "check mode created the tool"

    r = ansible_run(task, agent=agent)
    assert r[0]["failed"] is False, r
    assert r[0]["changed"] is True and r[0]["actions"] == ["created"]
    tool = r[0]["tool"]
    assert tool["name"] == tool["instance_name_on_toolbox"] == n and tool["state"] == "running"
    assert tool["account_tool_instance_id"] == "acct-it" and tool["image"] == BUSYBOX
    assert tool["config_hash"] == r[0]["plan"]["config_hash"] == r[0]["diff"]["after"]["config_hash"]
    details = inspect(docker_api, n)
    assert details["Id"] == tool["container_id"] and details["State"]["Running"] is True
    assert details["Config"]["Cmd"] == ["sleep", "3600"]

    r = ansible_run(task, agent=agent)
    assert r[0]["failed"] is False, r
    assert r[0]["changed"] is False and r[0]["actions"] == []
    assert r[0]["tool"]["container_id"] == tool["container_id"], "the useful return value is there when unchanged"
    assert r[0]["diff"]["before"] == r[0]["diff"]["after"]

    r = ansible_run(task, agent=agent, check=True)
    assert r[0]["failed"] is False and r[0]["changed"] is False, r
    assert inspect(docker_api, n)["Id"] == tool["container_id"]


def test_started_stopped_started_and_restarted(agent, ansible_run, docker_api, cleanup, name):
    n = name("tool-run")
    cleanup.append(n)
    r = ansible_run([{MOD: spec(n)}], agent=agent)
    assert r[0]["changed"] is True, r
    cid = r[0]["tool"]["container_id"]

    r = ansible_run([{MOD: spec(n, state="stopped")}], agent=agent, check=True)
    assert r[0]["changed"] is True and r[0]["actions"] == ["stopped"], r
    assert r[0]["diff"]["after"]["state"] == "exited"
    assert inspect(docker_api, n)["State"]["Running"] is True, "check mode stopped the tool"

    r = ansible_run([{MOD: spec(n, state="stopped")}, {MOD: spec(n, state="stopped")},
                     {MOD: {"name": n, "state": "stopped"}}], agent=agent)
    assert r[0]["changed"] is True and r[0]["actions"] == ["stopped"], r
    assert r[0]["tool"]["state"] == "exited" and r[0]["diff"]["before"]["state"] == "running"
    assert r[1]["changed"] is False and r[2]["changed"] is False, r
    assert inspect(docker_api, n)["State"]["Running"] is False

    # present leaves the run state alone
    r = ansible_run([{MOD: spec(n, state="present")}], agent=agent)
    assert r[0]["changed"] is False and r[0]["tool"]["state"] == "exited", r

    # without image: only the run state is managed
    r = ansible_run([{MOD: {"name": n, "state": "started"}}, {MOD: {"name": n}}], agent=agent)
    assert r[0]["changed"] is True and r[0]["actions"] == ["started"], r
    assert "plan" not in r[0]
    assert r[1]["changed"] is False, r
    assert inspect(docker_api, n)["State"]["Running"] is True
    assert inspect(docker_api, n)["Id"] == cid

    started_at = inspect(docker_api, n)["State"]["StartedAt"]
    r = ansible_run([{MOD: {"name": n, "state": "restarted", "stop_timeout": 0}}], agent=agent, check=True)
    assert r[0]["changed"] is True and r[0]["actions"] == ["restarted"], r
    assert inspect(docker_api, n)["State"]["StartedAt"] == started_at
    r = ansible_run([{MOD: {"name": n, "state": "restarted", "stop_timeout": 0}},
                     {MOD: {"name": n, "state": "restarted", "stop_timeout": 0}}], agent=agent)
    assert r[0]["changed"] is True and r[1]["changed"] is True, r
    assert r[0]["actions"] == ["restarted"]
    assert inspect(docker_api, n)["State"]["StartedAt"] != started_at
    assert inspect(docker_api, n)["Id"] == cid


def test_config_change_recreates_and_env_is_never_shown(agent, ansible_run, docker_api, cleanup, name):
    n = name("tool-cfg")
    cleanup.append(n)
    secret = "s3cr3t-" + name("v")[-8:]
    r = ansible_run([{MOD: spec(n)}], agent=agent)
    assert r[0]["changed"] is True, r
    old = r[0]["tool"]

    changed = spec(n, config={"Cmd": ["sleep", "3601"]}, env={"API_KEY": secret})
    r = ansible_run([{MOD: changed}], agent=agent, check=True)
    assert r[0]["changed"] is True and r[0]["actions"] == ["recreated"], r
    assert r[0]["plan"]["reason"] == "configuration changed"
    assert inspect(docker_api, n)["Id"] == old["container_id"]

    r = ansible_run([{MOD: changed}, {MOD: changed}], agent=agent, verbosity=3)
    assert r[0]["changed"] is True and r[0]["actions"] == ["recreated"], r
    new = r[0]["tool"]
    assert new["container_id"] != old["container_id"] and new["config_hash"] != old["config_hash"]
    assert r[0]["diff"]["before"]["config_hash"] == old["config_hash"]
    assert r[0]["diff"]["after"]["config_hash"] == new["config_hash"]
    assert r[1]["changed"] is False, r
    details = inspect(docker_api, n)
    assert details["Config"]["Cmd"] == ["sleep", "3601"]
    assert f"API_KEY={secret}" in details["Config"]["Env"]
    assert secret not in r.output

    # recreate keeps the requested run state: stopped stays stopped after a change
    r = ansible_run([{MOD: spec(n, state="stopped")}], agent=agent)
    assert r[0]["actions"] == ["recreated", "stopped"] and r[0]["tool"]["state"] == "exited", r


def test_absent_twice(agent, ansible_run, docker_api, cleanup, name):
    n = name("tool-gone")
    cleanup.append(n)
    assert ansible_run([{MOD: spec(n)}], agent=agent)[0]["changed"] is True

    r = ansible_run([{MOD: {"name": n, "state": "absent", "stop_timeout": 0}}], agent=agent, check=True)
    assert r[0]["changed"] is True and r[0]["actions"] == ["removed"], r
    assert exists(docker_api, n)

    absent = {MOD: {"name": n, "state": "absent", "stop_timeout": 0}}
    r = ansible_run([absent, absent], agent=agent)
    assert r[0]["failed"] is False and r[0]["changed"] is True and r[0]["actions"] == ["removed"], r
    assert r[0]["diff"] == {"before": {"image": BUSYBOX, "state": "running", "config_hash": r[0]["diff"]["before"]["config_hash"]},
                            "after": {"state": "absent"}}
    assert r[0]["tool"] is None
    assert r[1]["failed"] is False and r[1]["changed"] is False and r[1]["actions"] == [], r
    assert not exists(docker_api, n)

    r = ansible_run([absent], agent=agent, check=True)
    assert r[0]["changed"] is False, r


def test_state_without_image_on_a_missing_tool_fails_clearly(agent, ansible_run, name):
    n = name("tool-none")
    r = ansible_run([{MOD: {"name": n, "state": "stopped"}}], agent=agent)
    assert r[0]["failed"] is True
    assert "does not exist" in r[0]["msg"] and "image" in r[0]["msg"]


def test_account_id_is_needed_to_create(agent, ansible_run, docker_api, name):
    n = name("tool-acct")
    r = ansible_run([{MOD: {"name": n, "image": BUSYBOX, "config": SLEEP}}], agent=agent)
    assert r[0]["failed"] is True and "account_tool_instance_id" in r[0]["msg"], r
    assert not exists(docker_api, n)


def test_unsafe_config_fails_with_the_agents_message(agent, ansible_run, docker_api, name):
    n = name("tool-unsafe")
    r = ansible_run([{MOD: spec(n, config={"Cmd": ["sleep", "1"], "HostConfig": {"Privileged": True}})}], agent=agent)
    assert r[0]["failed"] is True
    assert "HTTP 400" in r[0]["msg"] and "Privileged is not allowed" in r[0]["msg"], r[0]["msg"]
    assert r[0]["status"] == 400
    assert "Traceback" not in r.output
    assert not exists(docker_api, n)


def test_name_taken_by_an_unmanaged_container_is_a_conflict(agent, ansible_run, docker_api, cleanup, name):
    n = name("tool-foreign")
    cleanup.append(n)
    docker_api.create_container(BUSYBOX, command=["sleep", "3600"], name=n)
    r = ansible_run([{MOD: spec(n)}], agent=agent, check=True)
    assert r[0]["failed"] is True and "does not manage" in r[0]["msg"], r


def test_port_conflict_is_reported(agent, ansible_run, docker_api, cleanup, name):
    port = free_port()
    first, second = name("tool-p1"), name("tool-p2")
    cleanup.extend([first, second])
    httpd = {"Cmd": ["httpd", "-f", "-p", "8080"], "ExposedPorts": {"8080/tcp": {}}, "HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": str(port)}]}}}
    r = ansible_run([{MOD: spec(first, config=httpd)}, {MOD: spec(second, config=httpd)}], agent=agent)
    assert r[0]["changed"] is True and r[0]["tool"]["ports"][0]["host_port"] == port, r
    assert r[1]["failed"] is True and "HTTP 409" in r[1]["msg"] and "port" in r[1]["msg"], r
    assert r[1]["status"] == 409


def test_wrong_token_fails_and_never_shows_a_token(agent, ansible_run, name):
    wrong = "wrong-token-" + "x" * 30
    r = ansible_run([{MOD: spec(name("tool-auth"))}], verbosity=3, url=agent.url, token=wrong)
    assert r[0]["failed"] is True
    assert "401" in r[0]["msg"] and "token" in r[0]["msg"], r[0]["msg"]
    assert wrong not in r.output and agent.token not in r.output

    r = ansible_run([{MOD: spec(name("tool-auth"), state="absent")}], verbosity=3, agent=agent)
    assert r[0]["failed"] is False, r
    assert agent.token not in r.output


def test_agent_down_fails_clearly(make_agent, ansible_run, name):
    down = make_agent()
    down.stop()
    r = ansible_run([{MOD: spec(name("tool-down"))}], verbosity=3, url=down.url, token=down.token)
    assert r[0]["failed"] is True
    assert "did not answer" in r[0]["msg"] and down.url in r[0]["msg"], r[0]["msg"]
    assert "Traceback" not in r.output
    assert down.token not in r.output


def test_failed_recreate_keeps_the_old_tool_running(agent, ansible_run, docker_api, cleanup, name):
    """A recreate whose new container does not stay up: the task fails with the exit code and log lines, and the
    previous container (same id) runs again under its name; nothing kept aside is left."""
    n = name("tool")
    cleanup.append(n)
    r = ansible_run([{MOD: spec(n, settle=0.5)}], agent=agent)
    assert r[0]["failed"] is False, r
    old_id = r[0]["tool"]["container_id"]
    broken = spec(n, settle=1, config={"Cmd": ["sh", "-c", "echo cannot-start; exit 7"]})
    r = ansible_run([{MOD: broken}, {MOD: broken, "check_mode": True}], agent=agent)
    assert r[0]["failed"] is True, r[0]
    assert "could not recreate the tool" in r[0]["msg"] and "exit code 7" in r[0]["msg"], r[0]["msg"]
    assert "cannot-start" in r[0]["msg"] and "the previous container was restored" in r[0]["msg"], r[0]["msg"]
    now = inspect(docker_api, n)
    assert now["Id"] == old_id and now["State"]["Running"], now["State"]
    assert not docker_api.containers(all=True, filters={"name": f"{n}-dtma-old-"}), "a kept-aside container was left"
    # the plan still says recreate: the module does not pretend the broken spec is in place
    assert r[1]["changed"] is True and r[1]["plan"]["action"] == "recreate", r[1]
