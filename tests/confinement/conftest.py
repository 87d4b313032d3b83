"""Fixtures and the summary hook of tests/confinement (the code is in confinement_env.py, a module of its own name,
because several conftest.py files share the name `conftest`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import confinement_env  # noqa: E402 pylint: disable=wrong-import-position

droplet = confinement_env.droplet
droplet_open = confinement_env.droplet_open
droplet_root = confinement_env.droplet_root
pytest_terminal_summary = confinement_env.pytest_terminal_summary
