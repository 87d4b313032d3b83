"""The collection as users get it: docs render, it builds and installs from its tarball, a playbook runs from
the installed copy, and the AWX metadata matches what the modules read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MODULES = ["dtma_exec", "dtma_mcp_group", "dtma_mcp_server", "dtma_tool", "dtma_info", "dtma_redeploy"]
# old module names that meta/runtime.yml redirects to their new ones (and keeps in the action group)
REDIRECTED = {"dtma_diagnostics": "dtma_info"}


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
    assert sorted(runtime["action_groups"]["dtma"]) == sorted(MODULES + list(REDIRECTED))
    routing = runtime["plugin_routing"]["modules"]
    assert dict((old, r["redirect"]) for old, r in routing.items()) == dict(
        (old, "agentopia.dtma." + new) for old, new in REDIRECTED.items())
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
        "tasks": [{"agentopia.dtma.dtma_info": {"gather": ["health", "status"]}, "register": "diag"},
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


# --- release metadata -----------------------------------------------------------------------------------------

def test_galaxy_metadata_has_the_project_urls_and_the_license_text():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    for key in ("repository", "documentation", "homepage", "issues"):
        assert galaxy[key].startswith("https://"), key
    assert galaxy["license"] == ["GPL-3.0-or-later"]
    license_text = (REPO / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in license_text and "Version 3, 29 June 2007" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the whole text, not a pointer to it


def test_changelog_lints_and_0_1_0_has_a_summary_and_each_module_once_as_new():
    for cmd in (["lint"], ["lint-changelog-yaml", "changelogs/changelog.yaml"]):
        done = run([str(BIN / "antsibull-changelog"), *cmd], cwd=REPO)
        assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load((REPO / "changelogs" / "config.yaml").read_text())
    assert config["use_fqcn"] is True
    release = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())["releases"]["0.1.0"]
    assert release["changes"]["release_summary"].strip()
    assert sorted(m["name"] for m in release["modules"]) == sorted(MODULES)  # each once


def test_the_changelog_as_released_lists_each_module_once_under_new_modules(tmp_path):
    """Cut the release on a copy (fragments folded in, CHANGELOG.rst generated) the way a release will."""
    copy = tmp_path / "ansible_collections" / "agentopia" / "dtma"
    for name in ("changelogs", "plugins", "meta"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "galaxy.yml", copy / "galaxy.yml")
    done = run([str(BIN / "antsibull-changelog"), "release", "--version", "0.1.0", "--update-existing"], cwd=copy,
               env={"PATH": f"{BIN}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr
    rst = (copy / "CHANGELOG.rst").read_text()
    assert "Release Summary" in rst
    new_modules = rst.split("New Modules\n-----------\n", 1)[1]
    for module in MODULES:
        assert rst.count(f"- agentopia.dtma.{module} - ") == 1 and f"- agentopia.dtma.{module} - " in new_modules


def test_the_execution_environment_definition_builds_a_context_offline(installed, tmp_path):
    """ansible-builder create (no network, no container engine) with the collection tarball beside the definition;
    ansible-builder's introspection of the installed collection finds its Python and system requirements."""
    tarball, target = installed
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    assert tarball.name == f"agentopia-dtma-{galaxy['version']}.tar.gz"
    assert [f["src"] for f in ee["additional_build_files"]] == [tarball.name]
    assert ee["dependencies"]["galaxy"]["collections"][0]["name"].endswith("/" + tarball.name)
    work = tmp_path / "ee"
    work.mkdir()
    (work / "execution-environment.yml").write_text((REPO / "execution-environment.yml").read_text())
    (work / tarball.name).write_bytes(tarball.read_bytes())
    done = run([str(BIN / "ansible-builder"), "create", "-f", "execution-environment.yml", "-c", "context",
                "--output-filename", "Containerfile"], cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    context = work / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile and "COPY _build/collection/ /tmp/dtma-collection/" in containerfile
    assert (context / "_build" / "collection" / tarball.name).exists()
    assert "agentopia-dtma" in (context / "_build" / "requirements.yml").read_text()

    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    done = run([str(BIN / "ansible-builder"), "introspect", "--sanitize", str(target)])
    assert done.returncode == 0, done.stderr
    deps = yaml.safe_load(done.stdout.split("\n", 1)[1])
    assert any(line.startswith("requests") for line in deps["python"])
    assert any(line.startswith("openssh-client [platform:dpkg]") for line in deps["system"])
    # bindep parses it, and this (dpkg) machine has what it lists
    done = run([str(BIN / "bindep"), "-f", str(REPO / "bindep.txt"), "--brief"])
    assert done.returncode == 0, done.stdout + done.stderr
