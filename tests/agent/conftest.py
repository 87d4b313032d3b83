"""The agent suite uses the shared real-Docker fixtures."""

from dtma_testing import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
