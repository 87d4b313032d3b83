"""Jobs run the way AWX runs them: ansible-runner (the engine AWX uses) with a private data dir holding an inventory
whose hosts carry only `ansible_host` (plus `dtma_port`/`dtma_url` where a test says so), and the environment that
the custom credential type `awx/credential_type_dtma.yml` injects, rendered from that file the way AWX renders it
(its injector templates, its file injector written into the private data dir's env/). The playbooks are the
repository's own, against real agents on loopback.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import ansible_runner
import pytest
import requests
import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dtma_testing import wait_until

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CREDENTIAL_TYPE = yaml.safe_load((REPO / "awx" / "credential_type_dtma.yml").read_text())


class _Namespace:
    pass


def inject(inputs: dict, private_data_dir: Path) -> dict:
    """The environment AWX gives a job for a credential of our type with these inputs (what
    awx.main.models.credential.CredentialType.inject_credential does): inputs left empty are undefined in the
    templates, each `template.<name>` file injector is rendered into a private file under env/ whose path is
    `tower.filename.<name>`, then every env injector is rendered."""
    fields = {f["id"]: f for f in CREDENTIAL_TYPE["inputs"]["fields"]}
    assert set(inputs) <= set(fields), "inputs the credential type does not have: %s" % (set(inputs) - set(fields))
    for required in CREDENTIAL_TYPE["inputs"].get("required", []):
        assert inputs.get(required), "AWX refuses a credential without " + required
    namespace: dict = {k: v for k, v in inputs.items() if v}
    for field in fields.values():
        if field["type"] == "boolean" and field["id"] not in inputs:
            namespace[field["id"]] = False
    tower = _Namespace()
    tower.filename = _Namespace()
    namespace["tower"] = tower
    sandbox = ImmutableSandboxedEnvironment()
    for label, template in CREDENTIAL_TYPE["injectors"].get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=private_data_dir / "env")
        with os.fdopen(handle, "w") as f:
            f.write(sandbox.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        setattr(tower.filename, label.split(".")[1], path)
    return {var: sandbox.from_string(template).render(**namespace)
            for var, template in CREDENTIAL_TYPE["injectors"]["env"].items()}


def test_the_credential_type_passes_awxs_own_validation():
    """AWX renders every injector with all inputs set and StrictUndefined when the type is saved."""
    injectors = CREDENTIAL_TYPE["injectors"]
    assert set(injectors) <= {"env", "file", "extra_vars"}
    assert not any(var.startswith("ANSIBLE_") for var in injectors["env"])
    namespace = {f["id"]: "EXAMPLE" for f in CREDENTIAL_TYPE["inputs"]["fields"]}
    tower = _Namespace()
    tower.filename = _Namespace()
    for label in injectors.get("file", {}):
        assert label.startswith("template.")
        setattr(tower.filename, label.split(".")[1], "EXAMPLE_FILENAME")
    namespace["tower"] = tower
    strict = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for kind in ("env", "file"):
        for template in injectors.get(kind, {}).values():
            strict.from_string(template).render(namespace)
    # every variable it injects is one the modules read
    common = (REPO / "plugins" / "module_utils" / "_common.py").read_text()
    assert all('"%s"' % var in common for var in injectors["env"])


@pytest.fixture
def awx_job(collections_path, tmp_path, monkeypatch):
    """awx_job(inventory_hosts, credential=None, playbook=..., extravars=None, home_files=None) -> (runner, stdout).

    One private data dir per job; HOME is a fresh directory (as in an execution environment: no token files
    under the controller's home unless `home_files` puts them there). ansible-runner passes its own process
    environment on to the job, so DTMA_* and ANSIBLE_* of the test run are removed first."""
    for name in list(os.environ):
        if name.startswith(("DTMA_", "ANSIBLE_")):
            monkeypatch.delenv(name)
    counter = {"n": 0}

    def run(hosts: dict, credential: dict | None = None, playbook: str = "playbooks/diagnostics.yml",
            extravars: dict | None = None, home_files: dict | None = None):
        counter["n"] += 1
        pdd = tmp_path / f"job-{counter['n']}"
        for sub in ("inventory", "env"):
            (pdd / sub).mkdir(parents=True)
        (pdd / "project").symlink_to(REPO)  # AWX checks the project out here
        (pdd / "inventory" / "hosts.yml").write_text(yaml.safe_dump({"dtma_hosts": {"hosts": hosts}}))
        home = pdd / "home"
        home.mkdir()
        for rel, content in (home_files or {}).items():
            (home / rel).parent.mkdir(parents=True, exist_ok=True)
            (home / rel).write_text(content)
        env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(home), "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0"}
        if credential is not None:
            env.update(inject(credential, pdd))
        (pdd / "env" / "envvars").write_text(yaml.safe_dump(env))
        if extravars:
            (pdd / "env" / "extravars").write_text(yaml.safe_dump(extravars))
        runner = ansible_runner.run(private_data_dir=str(pdd), playbook=playbook, quiet=True, timeout=300)
        return runner, runner.stdout.read()

    return run


def health_lines(stdout: str) -> list[str]:
    """The Summary lines of playbooks/diagnostics.yml, e.g. 'HEALTHY | agent_api=healthy backend=unknown … | version=…'."""
    return re.findall(r'"msg": "((?:HEALTHY|DEGRADED|UNHEALTHY) \|[^"]*)"', stdout)


def test_the_credential_alone_reaches_the_agent(awx_job, agent):
    """The inventory says only where the host is; its port is not the agent's (30000 is not where this agent
    listens): the URL and the token both come from the credential."""
    runner, out = awx_job({"droplet-1": {"ansible_host": "127.0.0.1"}},
                          credential={"url": agent.url, "token": agent.token})
    assert (runner.rc, runner.status) == (0, "successful"), out[-3000:]
    lines = health_lines(out)
    assert len(lines) == 1 and lines[0].startswith("HEALTHY | agent_api=healthy"), out[-3000:]
    assert "docker=healthy" in lines[0]
    assert "tools=" in lines[0]  # the status section answered: the token was accepted
    assert agent.token not in out


def test_a_bogus_credential_url_fails_the_job_naming_it(awx_job, agent, dead_url):
    runner, out = awx_job({"droplet-1": {"ansible_host": "127.0.0.1"}}, credential={"url": dead_url, "token": agent.token})
    assert runner.rc != 0 and runner.status == "failed", out[-3000:]
    assert f"the DTMA agent at {dead_url} did not answer" in out
    assert agent.token not in out


def test_an_inventory_dtma_url_wins_over_the_credential(awx_job, agent, dead_url):
    runner, out = awx_job({"droplet-1": {"ansible_host": "127.0.0.1", "dtma_url": agent.url}},
                          credential={"url": dead_url, "token": agent.token})
    assert runner.rc == 0, out[-3000:]
    assert health_lines(out)[0].startswith("HEALTHY |") and dead_url not in out


def test_a_fleet_credential_carries_the_backends_key_and_each_url_comes_from_the_inventory(awx_job, make_agent):
    """A fleet: every agent has its own DTMA_BEARER_TOKEN and accepts the backend's BACKEND_TO_DTMA_API_KEY. One
    credential with that key and no URL serves them all; each host's URL is built from its ansible_host and dtma_port."""
    fleet_key = "fleet-key-" + os.urandom(16).hex()
    agents = [make_agent(env={"BACKEND_TO_DTMA_API_KEY": fleet_key}), make_agent(env={"BACKEND_TO_DTMA_API_KEY": fleet_key})]
    hosts = {f"droplet-{i}": {"ansible_host": "127.0.0.1", "dtma_port": a.port} for i, a in enumerate(agents, 1)}
    runner, out = awx_job(hosts, credential={"token": fleet_key})
    assert runner.rc == 0, out[-3000:]
    lines = health_lines(out)
    assert len(lines) == 2 and all(line.startswith("HEALTHY |") and "tools=" in line for line in lines), out[-3000:]
    assert fleet_key not in out


def test_a_token_file_on_the_controller_wins_over_the_credential_token(awx_job, agent):
    runner, out = awx_job({"droplet-1": {"ansible_host": "127.0.0.1"}},
                          credential={"url": agent.url, "token": "wrong-token-0123456789abcdefgh"},
                          home_files={".dtma/tokens/droplet-1.token": agent.token + "\n"})
    assert runner.rc == 0, out[-3000:]
    assert health_lines(out)[0].startswith("HEALTHY |")


def test_an_explicit_token_file_that_is_missing_fails_instead_of_falling_back(awx_job, agent, tmp_path):
    missing = tmp_path / "no-such.token"
    runner, out = awx_job({"droplet-1": {"ansible_host": "127.0.0.1", "dtma_token_file": str(missing)}},
                          credential={"url": agent.url, "token": agent.token})
    assert runner.rc != 0 and str(missing) in out, out[-3000:]


@pytest.fixture
def tls_agent(make_agent, tmp_path):
    """A real agent serving HTTPS with a self-signed certificate for 127.0.0.1; returns (agent, url, cert PEM)."""
    cert, key = tmp_path / "agent.crt", tmp_path / "agent.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    a = make_agent(env={"DTMA_TLS_CERT": str(cert), "DTMA_TLS_KEY": str(key)}, wait=False)
    url = f"https://127.0.0.1:{a.port}"

    def answers():
        try:
            return requests.get(url + "/health", timeout=1, verify=str(cert)).ok
        except requests.RequestException:
            return False

    assert wait_until(answers, 15), a.log()
    return a, url, cert.read_text()


def test_the_credentials_ca_certificate_verifies_an_https_agent(awx_job, tls_agent):
    a, url, ca_pem = tls_agent
    host = {"droplet-1": {"ansible_host": "127.0.0.1"}}
    runner, out = awx_job(host, credential={"url": url, "token": a.token, "ca_file": ca_pem})
    assert runner.rc == 0, out[-3000:]
    assert health_lines(out)[0].startswith("HEALTHY |")
    # without the CA the system store does not know the agent's certificate: the job fails on TLS
    runner, out = awx_job(host, credential={"url": url, "token": a.token})
    assert runner.rc != 0 and "TLS failure talking to the DTMA agent at " + url in out, out[-3000:]
