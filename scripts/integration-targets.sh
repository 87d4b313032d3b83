#!/usr/bin/env bash
# The ansible-test integration targets (tests/integration/targets/dtma_*) against a real agent and real Docker:
# tests/integration/run_targets.py starts the agent (supervised, with releases for dtma_redeploy) and the exec
# sandbox, then runs `scripts/ansible-test.sh integration --python 3.11 ARGS…`. Examples:
#   bash scripts/integration-targets.sh                 every target
#   bash scripts/integration-targets.sh dtma_tool -v    one target, verbose
#   bash scripts/ansible-test.sh integration --list-targets
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH="$PWD/agent/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" exec .venv/bin/python tests/integration/run_targets.py --python 3.11 "$@"
