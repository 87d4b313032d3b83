"""A redeploy to a release whose agent does not start: `bin/dtma-agent --version` succeeds (the agent checks it
before it switches), serving exits at once. The dtma_redeploy module (as playbooks/redeploy.yml runs it, minus the
role's install of the release) must fail saying it rolled back; the previous release serves again, and the MCP
containers are the same containers, still running."""

from __future__ import annotations

import json

import pytest

from droplet_env import DOCKER, REPO, sh
from faults_env import group_payload, post_group, prefix, remove_group

pytestmark = pytest.mark.timeout(300)

HOME = "/opt/dtma"
VERSION = "9.9.9-broken"
BROKEN = f"""#!/bin/sh
if [ "$1" = --version ]; then echo "dtma-agent {VERSION}"; exit 0; fi
echo "release {VERSION}: this agent does not start" >&2
exit 3
"""
# the module with its own (deprecated) SSH rollback, to the droplet as its inventory reaches it (URL, token, SSH key)
TASK = {"mode": "redeploy", "version": VERSION, "wait_timeout": 15, "rollback": True, "dtma_home": HOME,
        "ssh_host": "{{ ansible_host }}", "ssh_port": "{{ ansible_port }}", "ssh_user": "{{ ansible_user }}",
        "ssh_key_file": "{{ ansible_ssh_private_key_file }}"}


def mcp_containers(d) -> dict:
    """This session's MCP servers as GET /mcp/status reports them: name -> (container id, state)."""
    code, text = d.request("GET", "/mcp/status")
    assert code == 200, f"GET /mcp/status answered {code}: {text[:1000]}"
    return {s["name"]: (s["container_id"], s["state"]) for s in json.loads(text)["mcp_servers"]
            if (s.get("group_id") or "").startswith(prefix(d))}


def links(d) -> dict:
    out = d.root(f"cd {HOME} && for l in current previous; do printf '%s=%s\\n' $l \"$(readlink $l)\"; done").stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def test_redeploy_to_a_release_that_does_not_start_rolls_back(droplet, api):
    group_id = f"{prefix(droplet)}-rel"
    code, text = post_group(droplet, group_payload(group_id, [f"{group_id}-a", f"{group_id}-b"]))
    assert code == 201, f"deploying the group answered {code}: {text[:2000]}"
    before_links = links(droplet)
    code, before = droplet.health()
    assert code == 200, before
    servers = mcp_containers(droplet)
    assert set(servers) == {droplet.mcp, f"{group_id}-a", f"{group_id}-b"}, servers
    assert all(state == "running" for _id, state in servers.values()), servers
    release = f"{HOME}/releases/{VERSION}"
    sh([DOCKER, "exec", "-i", droplet.name, "sh", "-c", f"mkdir -p {release}/bin && cat > {release}/bin/dtma-agent && "
        f"chmod 755 {release}/bin/dtma-agent"], input=BROKEN)
    out = droplet.state_dir / "redeploy-result.json"
    playbook = droplet.state_dir / "redeploy-broken.yml"
    task = {**TASK, "ssh_known_hosts_file": str(droplet.state_dir / "demo" / "known_hosts")}
    playbook.write_text(json.dumps([{
        "name": "Redeploy to a release whose agent does not start", "hosts": "dtma_hosts", "gather_facts": False,
        "vars_files": [str(REPO / "playbooks/vars/connection.yml")],
        "module_defaults": {"group/agentopia.dtma.dtma": {"url": "{{ __dtma_url }}", "token": "{{ __dtma_token }}"}},
        "tasks": [{"block": [{"name": "Switch with a health gate", "agentopia.dtma.dtma_redeploy": task,
                              "delegate_to": "localhost", "register": "__result"}],
                   "always": [{"name": "Save the result", "delegate_to": "localhost",
                               "ansible.builtin.copy": {"content": "{{ __result | to_json }}", "dest": str(out),
                                                        "mode": "0600"}}]}]}]))
    try:
        run = droplet.playbook(str(playbook))
        result = json.loads(out.read_text())
        print(result.get("msg"))
        assert run.returncode != 0, f"the play did not fail:\n{run.stdout[-3000:]}"
        assert result.get("failed") is True and result.get("rolled_back") is True, json.dumps(result)[:3000]
        assert "rolled back" in result["msg"] and "answers again" in result["msg"], result["msg"]
        assert droplet.token not in run.stdout + run.stderr
        code, after = droplet.health()
        assert code == 200 and after["version"] == before["version"], f"after the rollback: {code} {after}"
        assert after["boot_id"] != before["boot_id"], "the agent was not restarted: the redeploy did not happen"
        assert links(droplet)["current"] == before_links["current"], links(droplet)
        now = mcp_containers(droplet)
        assert now == servers, f"MCP containers changed across the failed redeploy:\nbefore {servers}\nafter  {now}"
        running = {c["Id"]: c["State"] for c in api.containers(all=True, filters={"name": prefix(droplet)})}
        assert all(running.get(cid) == "running" for cid, _state in servers.values()), running
    finally:
        # put the droplet back as it was, whatever happened
        if links(droplet)["current"] != before_links["current"]:
            droplet.root(f"ln -sfn {before_links['current']} {HOME}/current && systemctl reset-failed dtma; "
                         "systemctl restart dtma")
        previous = (f"ln -sfn {before_links['previous']} {HOME}/previous" if before_links["previous"]
                    else f"rm -f {HOME}/previous")
        droplet.root(f"{previous}; rm -rf {release}")
        remove_group(droplet, group_id)
