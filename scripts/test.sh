#!/usr/bin/env bash
# The whole test suite: sets up what it needs, then runs every test against a real Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/pytest tests/agent -p no:cacheprovider "$@"
