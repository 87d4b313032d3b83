"""The role's Prometheus scrape config (tasks_from: prometheus, the dtma_prometheus phase), written by real
ansible-playbook runs on localhost and checked with Debian's promtool: a valid config whose job reads the host's
token from a 0600 file, never from the config; https and a CA with TLS; a second run changes nothing.
tests/droplet/test_prometheus.py has a real Prometheus scrape an installed agent with such a config."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
PROMTOOL = shutil.which("promtool")


def run_role(collections_path: Path, root: Path, *extra: str) -> tuple[int, str]:
    """The role's token tasks with a given token, then its Prometheus tasks, for the host `droplet-1`."""
    tasks = [{"name": f"The role's {part} tasks",
              "ansible.builtin.include_role": {"name": "agentopia.dtma.dtma", "tasks_from": part}}
             for part in ("token", "prometheus")]
    play = [{"hosts": "droplet-1", "gather_facts": False, "tasks": tasks}]
    (root / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "ANSIBLE_"))}
    env.update({"ANSIBLE_COLLECTIONS_PATH": str(collections_path), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_LOCALHOST_WARNING": "0", "HOME": str(root)})
    (root / "hosts").write_text("droplet-1 ansible_host=192.0.2.7\n")
    done = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(root / "hosts"), "-c", "local",
                           str(root / "play.yml"), "-e", f"ansible_python_interpreter={sys.executable}", *extra],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert "droplet-1" in done.stdout and "no hosts matched" not in done.stdout, done.stdout
    return done.returncode, done.stdout + done.stderr


def promtool_check(root: Path, snippet: Path) -> subprocess.CompletedProcess:
    """promtool's check of a prometheus.yml whose scrape_configs are the snippet's (Debian's 2.42 has no
    scrape_config_files)."""
    config = root / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": yaml.safe_load(snippet.read_text())["scrape_configs"]}))
    return subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, check=False)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed")
def test_the_scrape_config_names_a_token_file_and_promtool_accepts_it(collections_path, tmp_path):
    token = secrets.token_hex(32)
    snippet = tmp_path / "prometheus" / "dtma" / "droplet-1.yml"
    rc, out = run_role(collections_path, tmp_path, "-e", f"dtma_token={token}",
                       "-e", f"dtma_prometheus_scrape_config={snippet}")
    assert rc == 0, out
    assert token not in out
    token_file = snippet.with_suffix(".token")
    assert token_file.read_text().strip() == token and token_file.stat().st_mode & 0o777 == 0o600
    text = snippet.read_text()
    assert token not in text
    job = yaml.safe_load(text)["scrape_configs"][0]
    assert job["job_name"] == "dtma-droplet-1" and job["scheme"] == "http" and job["metrics_path"] == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": str(token_file)}
    assert job["static_configs"] == [{"targets": ["192.0.2.7:30000"], "labels": {"dtma_host": "droplet-1"}}]
    assert job["relabel_configs"] == [{"target_label": "job", "replacement": "dtma"}]
    check = promtool_check(tmp_path, snippet)
    assert check.returncode == 0, check.stdout + check.stderr

    rc, out = run_role(collections_path, tmp_path, "-e", f"dtma_token={token}",
                       "-e", f"dtma_prometheus_scrape_config={snippet}")
    assert rc == 0 and "changed=0" in out, out


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed")
def test_tls_scrapes_over_https_with_the_ca_and_a_token_file_of_its_own(collections_path, tmp_path):
    token = secrets.token_hex(32)
    snippet, token_file = tmp_path / "dtma.yml", tmp_path / "secrets" / "dtma-droplet-1"
    rc, out = run_role(collections_path, tmp_path, "-e", f"dtma_token={token}",
                       "-e", f"dtma_prometheus_scrape_config={snippet}", "-e", f"dtma_prometheus_token_file={token_file}",
                       "-e", "dtma_tls_cert=/etc/dtma/tls.crt", "-e", "dtma_tls_key=/etc/dtma/tls.key",
                       "-e", "dtma_prometheus_ca_file=/etc/prometheus/dtma-ca.crt",
                       "-e", "dtma_prometheus_target=[2001:db8::7]:30443")
    assert rc == 0, out
    job = yaml.safe_load(snippet.read_text())["scrape_configs"][0]
    assert job["scheme"] == "https" and job["tls_config"] == {"ca_file": "/etc/prometheus/dtma-ca.crt"}
    assert job["authorization"]["credentials_file"] == str(token_file) and token_file.read_text().strip() == token
    assert job["static_configs"][0]["targets"] == ["[2001:db8::7]:30443"]
    check = promtool_check(tmp_path, snippet)
    assert check.returncode == 0, check.stdout + check.stderr
