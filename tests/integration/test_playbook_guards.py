"""Guards that stop a playbook or the role before they do something nobody asked for: deploy_mcp_group.yml without a
group, the role on an OS family it does not support. Real ansible-playbook runs (the group guard against a real
agent, which must see nothing deployed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def playbook(collections_path, args, env=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "ANSIBLE_"))}
    base.update({"ANSIBLE_COLLECTIONS_PATH": str(collections_path), "ANSIBLE_NOCOLOR": "1",
                 "ANSIBLE_LOCALHOST_WARNING": "0", **(env or {})})
    done = subprocess.run([str(ANSIBLE_PLAYBOOK), *args], env=base, capture_output=True, text=True, timeout=300, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def agent_inventory(agent, tmp_path):
    """One host whose agent is the shared test agent (the token through the environment, never in a file)."""
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"dtma_hosts": {"hosts": {"droplet-1": {
        "ansible_host": "127.0.0.1", "dtma_url": agent.url, "ansible_python_interpreter": sys.executable}}}}))
    return path


def deployed_groups(agent) -> list:
    return [s.get("group_id") or s.get("groupId") for s in agent.get("/mcp/status").json()["mcp_servers"]]


def test_deploy_mcp_group_refuses_to_run_without_a_group(collections_path, agent, agent_inventory):
    before = deployed_groups(agent)
    rc, out = playbook(collections_path, ["-i", str(agent_inventory), str(REPO / "playbooks" / "deploy_mcp_group.yml")],
                       env={"DTMA_BEARER_TOKEN": agent.token})
    assert rc != 0, out
    assert "no MCP group given for droplet-1: set dtma_mcp_group_name and dtma_mcp_group_servers" in out, out
    assert "-e @playbooks/vars/demo_mcp_group.yml" in out
    assert "TASK [Converge the group]" not in out  # nothing reached the agent
    assert deployed_groups(agent) == before


def test_deploy_mcp_group_with_a_name_only_needs_a_servers_list_to_deploy(collections_path, agent, agent_inventory):
    rc, out = playbook(collections_path, ["-i", str(agent_inventory), str(REPO / "playbooks" / "deploy_mcp_group.yml"),
                                          "-e", "dtma_mcp_group_name=dtmatest-guard"], env={"DTMA_BEARER_TOKEN": agent.token})
    assert rc != 0 and "no MCP group given" in out, out


def test_deploy_mcp_group_removes_a_named_group_without_servers(collections_path, agent, agent_inventory):
    rc, out = playbook(collections_path, ["-i", str(agent_inventory), str(REPO / "playbooks" / "deploy_mcp_group.yml"),
                                          "-e", "dtma_mcp_group_name=dtmatest-guard-absent", "-e", "dtma_mcp_group_state=absent"],
                       env={"DTMA_BEARER_TOKEN": agent.token})
    assert rc == 0 and "ok: [droplet-1 -> localhost]" in out, out


def test_the_demo_group_file_is_a_group_the_agent_accepts(collections_path, agent, agent_inventory):
    """scripts/demo.sh passes playbooks/vars/demo_mcp_group.yml; check mode asks the agent for the plan (nothing is
    created), so the file's servers are validated by the real agent without deploying them."""
    rc, out = playbook(collections_path, ["-i", str(agent_inventory), str(REPO / "playbooks" / "deploy_mcp_group.yml"),
                                          "-e", "@" + str(REPO / "playbooks" / "vars" / "demo_mcp_group.yml"),
                                          "-e", "dtma_mcp_group_name=dtmatest-demo-plan", "--check", "--diff"],
                       env={"DTMA_BEARER_TOKEN": agent.token})
    assert rc == 0 and "changed: [droplet-1 -> localhost]" in out, out
    assert "mcp-demo-http" in out and "mcp-demo-events" in out
    assert "dtmatest-demo-plan" not in deployed_groups(agent)


ROLE_PREFLIGHT = [{
    "hosts": "localhost", "gather_facts": True, "gather_subset": ["min"],
    "tasks": [
        {"name": "Pretend to be another OS", "ansible.builtin.set_fact": {
            "ansible_os_family": "{{ os_family }}", "ansible_distribution": "{{ distribution }}",
            "ansible_distribution_version": "{{ version }}", "cacheable": True}},
        {"name": "Preflight of the role", "ansible.builtin.include_role": {"name": "agentopia.dtma.dtma", "tasks_from": "preflight"}},
    ],
}]


@pytest.mark.parametrize("os_family, distribution, version, supported", [
    ("RedHat", "Fedora", "40", False),
    ("Alpine", "Alpine", "3.20", False),
    ("Debian", "Debian", "12", True),
    ("Debian", "Ubuntu", "22.04", True),
])
def test_the_role_preflight_asserts_a_supported_os_family(collections_path, tmp_path, os_family, distribution, version,
                                                          supported):
    play = tmp_path / "preflight.yml"
    play.write_text(yaml.safe_dump(ROLE_PREFLIGHT))
    rc, out = playbook(collections_path, ["-i", "localhost,", "-c", "local", str(play),
                                          "-e", f"os_family={os_family} distribution={distribution} version={version}",
                                          "-e", f"ansible_python_interpreter={sys.executable}"])
    assert rc != 0, out  # this machine's service manager is not systemd: the next assert stops a supported OS
    if supported:
        assert "TASK [agentopia.dtma.dtma : Assert a supported OS family" in out and "supports the Debian OS family" not in out
        assert "the DTMA role installs a systemd service" in out, out
    else:
        assert (f"the DTMA role supports the Debian OS family (it installs with apt; tested on Debian bookworm and "
                f"Ubuntu jammy); this host is {distribution} {version} of the {os_family} family") in out, out
        assert "systemd service" not in out
