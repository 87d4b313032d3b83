"""Logging setup: records go to stderr (journald under systemd) and to a ring buffer that
GET /diagnostics/logs reads back."""

from __future__ import annotations

import logging
import threading
from collections import deque

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RingBuffer(logging.Handler):
    def __init__(self, capacity: int = 10000):
        super().__init__()
        self.records: deque[str] = deque(maxlen=capacity)
        self._guard = threading.Lock()
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._guard:
            self.records.append(line)

    def tail(self, n: int) -> list[str]:
        with self._guard:
            return list(self.records)[-n:]


RING = RingBuffer()


def setup_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger("dtma")
    if RING in root.handlers:
        return
    root.setLevel(level)
    stderr = logging.StreamHandler()
    stderr.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(stderr)
    root.addHandler(RING)
    root.propagate = False
