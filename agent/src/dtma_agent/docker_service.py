"""The one object routes reach Docker through: the lazily created API client, reads of managed containers, the
lifecycle actions on one container, and planning and applying a container's spec (reconcile.py)."""

from __future__ import annotations

import re
import threading
from collections import defaultdict

from . import containers
from . import docker_state as ds
from . import reconcile
from .errors import DockerUnavailable
from .sdk import docker, requests


def docker_failures() -> tuple[type[Exception], ...]:
    """Everything that means "Docker did not answer the way it should"; what a route that still has something to say
    (status, diagnostics, the heartbeat) catches: `except docker_failures():`. A function, so that naming it does
    not import the SDK."""
    return DockerUnavailable, docker.errors.DockerException, requests.exceptions.RequestException


class DockerService:
    """Created lazily, so the agent starts (and says so) while Docker is down."""

    def __init__(self, timeout: int = 60, readiness: reconcile.Readiness | None = None):
        self._timeout = timeout
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()
        self.readiness = readiness or reconcile.Readiness(settle_s=3.0)
        self._name_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)

    @property
    def api(self) -> docker.APIClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = docker.APIClient(version="auto", timeout=self._timeout, max_pool_size=32,
                                                        **docker.utils.kwargs_from_env())
                    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                        raise DockerUnavailable(f"cannot reach the Docker engine: {exc}") from None
        return self._client

    def lock(self, key: str) -> threading.Lock:
        """Changes of one group or one tool serialize, so concurrent requests end with exactly one set of containers."""
        with self._lock:
            return self._name_locks[key]

    def ping(self) -> bool:
        try:
            return bool(self.api.ping())
        except docker_failures():
            return False

    # -- reading -------------------------------------------------------------------------------------------

    def managed(self, kind: str | None = None, group: str | None = None, name: str | None = None) -> list[dict]:
        """Managed containers (running or not) in one list call; kept-aside ones are not listed."""
        views = [ds.container_view(c) for c in self.api.containers(all=True, filters=ds.label_filters(kind, group, name))]
        return [v for v in views if reconcile.parked_owner(v["name"]) is None]

    def find(self, name: str, kind: str | None = None) -> dict | None:
        """One managed container by exact name: a single inspect call (a list filter is a regex and slower)."""
        details = ds.inspect_by_name(self.api, name)
        if details is None:
            return None
        labels = details["Config"].get("Labels") or {}
        # inspect also answers to an id prefix; only the exact name counts
        if details["Name"] != f"/{name}" or labels.get(ds.MANAGED_BY) != ds.MANAGED_VALUE or (kind and labels.get(ds.KIND) != kind):
            return None
        return ds.container_view(ds.summary_of(details))

    def restart_counts(self, views: list[dict]) -> dict[str, int]:
        """Docker's restart count of each container (by id): the container list does not carry it, inspect does."""
        counts = {}
        for view in views:
            details = self.inspect(view)
            if details is not None:  # removed since the list
                counts[view["container_id"]] = details.get("RestartCount", 0)
        return counts

    def everything(self, name: str | None = None) -> dict[str, dict]:
        """Every container (managed or not) by name, or only `name` and its kept-aside containers."""
        filters = {"name": f"^/{re.escape(name)}({reconcile.PARKED}[0-9a-f]{{12}})?$"} if name else None
        return {v["name"]: v for v in (ds.container_view(c) for c in self.api.containers(all=True, filters=filters))}

    def inspect(self, view: dict) -> dict | None:
        try:
            return self.api.inspect_container(view["container_id"])
        except docker.errors.NotFound:
            return None

    def logs(self, view: dict, tail: int, since: int | None = None) -> list[str]:
        return containers.read_logs(self.api, view["container_id"], tail, since)

    def image_id(self, image: str, field: str = "dockerImageUrl") -> str | None:
        return containers.local_image_id(self.api, image, field)

    def engine(self) -> tuple[dict, dict, list]:
        """Docker's version, info and every container, for diagnostics."""
        return self.api.version(), self.api.info(), self.api.containers(all=True)

    # -- changing ------------------------------------------------------------------------------------------

    def act(self, view: dict, action: str, timeout: int) -> tuple[dict, bool]:
        """Start, stop or restart one managed container; its view afterwards and whether its state changed."""
        if action == "start":
            self.api.start(view["container_id"])
        elif action == "stop":
            self.api.stop(view["container_id"], timeout=timeout)
        else:
            self.api.restart(view["container_id"], timeout=timeout)
        after = self.find(view["name"], kind=view["kind"]) or {**view, "state": "removed"}
        return after, action == "restart" or after["state"] != view["state"]

    def remove(self, view: dict, force: bool, timeout_s: float) -> None:
        containers.stop_and_remove(self.api, view["container_id"], force, timeout_s)

    def plan(self, want: reconcile.Desired, everything: dict | None = None,
             settle_s: float | None = None) -> reconcile.Step:
        everything = self.everything(want.name) if everything is None else everything
        return reconcile.plan_one(self.api, want, everything, self.readiness.settle_s if settle_s is None else settle_s)

    def apply(self, step: reconcile.Step, readiness: reconcile.Readiness | None = None) -> dict:
        return reconcile.apply(self.api, step, readiness or self.readiness)

    def readiness_for(self, settle_s: float | None, ready_timeout_s: float | None) -> reconcile.Readiness:
        """The agent's readiness settings with a request's overrides."""
        return reconcile.Readiness(self.readiness.settle_s if settle_s is None else settle_s, ready_timeout_s)
