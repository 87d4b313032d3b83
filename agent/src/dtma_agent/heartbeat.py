"""Heartbeat to the backend: POST {AGENTOPIA_API_BASE_URL}/heartbeat every interval; failures are logged, never fatal."""

from __future__ import annotations

import logging
import threading


from . import __version__
from .docker_service import DockerService, docker_failures
from .metrics import system_metrics
from .sdk import requests

log = logging.getLogger("dtma.heartbeat")


def payload(docker: DockerService) -> dict:
    try:
        tools = [{"account_tool_instance_id": c["account_tool_instance_id"], "instance_name_on_toolbox": c["name"],
                  "container_id": c["container_id"], "kind": c["kind"], "state": c["state"], "status": c["status"]}
                 for c in docker.managed()]
        docker_ok = True
    except docker_failures() as exc:  # a heartbeat still goes out when Docker is down, and says so
        log.warning("heartbeat: cannot list containers: %s", exc)
        tools, docker_ok = [], False
    return {"dtma_version": __version__, "system_status": {**system_metrics(), "docker": docker_ok},
            "tool_statuses": tools}


class Heartbeat(threading.Thread):
    def __init__(self, base_url: str, token: str, docker: DockerService, interval: float):
        super().__init__(name="dtma-heartbeat", daemon=True)
        self.url, self._token, self.docker, self.interval = f"{base_url}/heartbeat", token, docker, interval
        self.stopped = threading.Event()

    def send(self) -> bool:
        try:
            response = requests.post(self.url, json=payload(self.docker), timeout=min(10.0, self.interval),
                                     headers={"Authorization": f"Bearer {self._token}"})
            if response.status_code >= 400:
                log.warning("heartbeat to %s answered HTTP %s", self.url, response.status_code)
                return False
            return True
        except requests.RequestException as exc:
            log.warning("heartbeat to %s failed: %s", self.url, exc.__class__.__name__)
            return False

    def run(self) -> None:
        while not self.stopped.is_set():
            self.send()
            self.stopped.wait(self.interval)
