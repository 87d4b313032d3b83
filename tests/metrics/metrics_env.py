"""The droplet and the Prometheus server of tests/metrics (fixtures exposed by conftest.py: several conftest.py files
share the module name `conftest`, so test modules import from metrics_env): the agent as the role installs it on a
droplet of its own (tests/droplet_env.py), with the role's Prometheus scrape config (dtma_prometheus_scrape_config)
written on this machine, and a real Prometheus (Debian's prometheus package) scraping it with that config: its own
process, config, storage and free port.

Environment:
  DTMA_METRICS_KEEP=1   keep the droplet after the session and reuse it next time (development only)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

import droplet_env
from droplet_env import Droplet
from dtma_testing import free_port

PROMETHEUS = shutil.which("prometheus")
SCRAPE_INTERVAL_S = 1


def prefix(d: Droplet) -> str:
    """Every group and container name of this session starts with it (the session-end cleanup removes them)."""
    return f"prm{d.session}"


def _install(root: Path, keep: bool) -> Droplet:
    state = root / "droplet"
    return droplet_env.install_with_mcp_group(state, keep, "dtma-metrics", "prm", {
        "dtma_prometheus_scrape_config": str(state / "prometheus" / "droplet-1.yml")})


@pytest.fixture(scope="session")
def metrics_droplet(tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip("prometheus (Debian's package) is not installed; scripts/setup.sh installs it")
    keep = os.environ.get("DTMA_METRICS_KEEP") == "1"
    root = Path("/tmp/dtma-metrics-keep") if keep else tmp_path_factory.mktemp("metrics")
    yield from droplet_env.session_droplet(root, keep, _install, "prm")


class Prometheus:
    """A real Prometheus server on a free loopback port, scraping every second with the given scrape configs."""

    def __init__(self, root: Path, scrape_configs: list[dict]):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": f"{SCRAPE_INTERVAL_S}s"},
            "scrape_configs": scrape_configs}))
        self.log_path = root / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.root / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"prometheus did not become ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def query(self, promql: str) -> list[dict]:
        """The instant vector of `promql` through the HTTP API: [{metric: {labels}, value: float}]."""
        r = requests.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", r.text
        return [{"metric": s["metric"], "value": float(s["value"][1])} for s in body["data"]["result"]]

    def targets(self) -> list[dict]:
        return requests.get(self.url + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]


@pytest.fixture(scope="session")
def prometheus(metrics_droplet, tmp_path_factory):
    """Prometheus with the role's scrape config for the droplet, and a job that sends a wrong token."""
    root = tmp_path_factory.mktemp("prometheus")
    snippet = metrics_droplet.state_dir / "prometheus" / "droplet-1.yml"
    jobs = yaml.safe_load(snippet.read_text())["scrape_configs"]
    wrong = root / "wrong.token"
    wrong.write_text("w" * 48 + "\n")
    wrong.chmod(0o600)
    jobs.append({"job_name": "dtma-wrong-token", "metrics_path": "/metrics",
                 "authorization": {"type": "Bearer", "credentials_file": str(wrong)},
                 "static_configs": [{"targets": [f"127.0.0.1:{metrics_droplet.port}"]}]})
    server = Prometheus(root, jobs).start()
    yield server
    server.stop()
