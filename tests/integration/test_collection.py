"""The collection as users get it: docs render, it builds and installs from its tarball, a playbook runs from
the installed copy, and the AWX metadata matches what the modules read."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = ["dtma_exec", "dtma_mcp_group", "dtma_mcp_server", "dtma_tool", "dtma_diagnostics", "dtma_redeploy"]


def run(cmd, env=None, cwd=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "DTMA_"))}
    return subprocess.run(cmd, env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(collections_path, module):
    done = run([str(BIN / "ansible-doc"), f"agentopia.dtma.{module}"], env={"ANSIBLE_COLLECTIONS_PATH": str(collections_path)})
    assert done.returncode == 0, done.stderr
    assert f"agentopia.dtma.{module}" in done.stdout and "EXAMPLES" in done.stdout and "url" in done.stdout


def test_action_group_lists_every_module():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    assert sorted(runtime["action_groups"]["dtma"]) == sorted(MODULES)
    assert sorted(p.stem for p in (REPO / "plugins" / "modules").glob("dtma_*.py")) == sorted(MODULES)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the tarball with ansible-galaxy and install it into an empty collections path."""
    work = tmp_path_factory.mktemp("galaxy")
    built = run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(work)])
    assert built.returncode == 0, built.stderr
    tarball = next(work.glob("agentopia-dtma-*.tar.gz"))
    target = work / "collections"
    # the target as the only collections path: a copy installed in ~/.ansible must not satisfy the install
    done = run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(target), "--no-deps", "--force"],
               env={"ANSIBLE_COLLECTIONS_PATH": str(target)})
    assert done.returncode == 0, done.stderr
    return tarball, target


def test_tarball_holds_the_collection_and_no_dev_files(installed):
    tarball, _target = installed
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    for needed in ("MANIFEST.json", "meta/runtime.yml", "plugins/modules/dtma_exec.py",
                   "plugins/module_utils/_policy.py", "agent/pyproject.toml", "agent/src/dtma_agent/app.py",
                   "meta/execution-environment.yml", "requirements.txt"):
        assert needed in names, needed
    assert not any(n.startswith((".venv", "tests/output", ".git/", "bench/", "scripts/")) for n in names)


def test_the_agent_policy_link_survives_the_build(installed):
    _tarball, target = installed
    engine = target / "ansible_collections" / "agentopia" / "dtma" / "agent" / "src" / "dtma_agent" / "policy" / "engine.py"
    assert engine.exists() and "class Policy" in engine.read_text()


def test_a_playbook_runs_from_the_installed_copy(installed, agent, tmp_path):
    _tarball, target = installed
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"agentopia.dtma.dtma_diagnostics": {"gather": ["health", "status"]}, "register": "diag"},
                  {"ansible.builtin.assert": {"that": ["diag.health.overall == 'healthy'", "diag.status.service == 'DTMA'"]}}],
    }]))
    # connection options as AWX injects them: environment variables from the credential type
    done = run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
               env={"ANSIBLE_COLLECTIONS_PATH": str(target), "DTMA_URL": agent.url, "DTMA_BEARER_TOKEN": agent.token,
                    "ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:]
    assert agent.token not in done.stdout + done.stderr


def test_awx_credential_type_injects_what_the_modules_read():
    credential = yaml.safe_load((REPO / "awx" / "credential_type_dtma.yml").read_text())
    assert set(credential["injectors"]["env"]) == {"DTMA_URL", "DTMA_BEARER_TOKEN", "DTMA_CA_PATH"}
    assert any(f["id"] == "token" and f.get("secret") for f in credential["inputs"]["fields"])
    common = (REPO / "plugins" / "module_utils" / "_common.py").read_text()
    assert all('"%s"' % var in common for var in credential["injectors"]["env"])
    ee = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    requirements = (REPO / ee["dependencies"]["python"]).read_text()
    assert "requests" in requirements and "paramiko" in requirements
