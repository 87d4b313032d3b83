"""Fixtures and the summary hook of tests/confinement (the code is in confinement_env.py, a module of its own name,
because several conftest.py files share the name `conftest`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from confinement_env import droplet, droplet_open, droplet_root, pytest_terminal_summary  # noqa: E402,F401
