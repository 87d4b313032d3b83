"""Fixtures and the summary hook of tests/faults (the code is in faults_env.py: several conftest.py files share the
module name `conftest`, so test modules import from faults_env)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import faults_env  # noqa: E402 pylint: disable=wrong-import-position

api = faults_env.api
droplet = faults_env.droplet
faults_droplet = faults_env.faults_droplet


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pylint: disable=unused-argument
    faults_env.summary(terminalreporter)
