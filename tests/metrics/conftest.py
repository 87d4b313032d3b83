"""Fixtures of tests/metrics (the code is in metrics_env.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import metrics_env  # noqa: E402 pylint: disable=wrong-import-position

metrics_droplet = metrics_env.metrics_droplet
prometheus = metrics_env.prometheus
