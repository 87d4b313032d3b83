#!/usr/bin/env bash
# The whole test suite: sets up what it needs (Docker engine, images, virtualenv), then runs
# ansible-test sanity and units on the collection, and the pytest suites against a real Docker engine:
# tests/agent (the agent's routes and policy) and tests/integration (the modules through ansible-playbook).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ansible-test sanity"
bash scripts/ansible-test.sh sanity --python 3.11
if [ -d tests/unit ]; then
  echo "== ansible-test units"
  bash scripts/ansible-test.sh units --python 3.11
fi
echo "== pytest (agent and modules, real Docker)"
.venv/bin/pytest -p no:cacheprovider "$@"
