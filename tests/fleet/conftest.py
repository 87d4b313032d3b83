"""Fixtures and the summary hook of tests/fleet (the code is in fleet_env.py: several conftest.py files share the
module name `conftest`, so test modules import from fleet_env)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fleet_env  # noqa: E402 pylint: disable=wrong-import-position

fleet = fleet_env.fleet


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pylint: disable=unused-argument
    fleet_env.summary(terminalreporter)
