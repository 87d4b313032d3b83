"""The Docker SDK and requests, imported on first use instead of at start: the agent starts, and answers /health,
without them (about 7 MB resident and 80 ms of start-up; the SDK brings requests, urllib3 and charset detection).

`docker.errors.NotFound` and `requests.post` read as usual. The first attribute looked up imports the module under
the import system's own lock, so threads that get there together all see it whole (which importlib's LazyLoader
does not promise)."""

from __future__ import annotations

import importlib


class _OnFirstUse:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)


docker = _OnFirstUse("docker")
requests = _OnFirstUse("requests")
