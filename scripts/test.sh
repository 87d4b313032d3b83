#!/usr/bin/env bash
# The whole test suite: sets up what it needs (Docker engine, images, virtualenv), then runs
# ansible-test sanity and units on the collection (the .venv's ansible-core, then scripts/ansible-matrix.sh: the other
# releases meta/runtime.yml claims), its integration targets against a real agent (scripts/integration-targets.sh),
# and the pytest suites against a real Docker engine:
# tests/agent (the agent's routes and policy) and tests/integration (the modules through ansible-playbook);
# then ansible-lint, the role's molecule scenarios on real systemd, and the main job (scripts/demo.sh) end to
# end. Extra arguments go to pytest.
#   scripts/test.sh quick [pytest args]   the inner loop, a minute or two: sanity, units, the changelog lint, the
#                                         command policy tests and the agent's route tests that start no
#                                         containers (input validation, auth, settings; real agent processes)
# DTMA_SKIP_SETUP=1 skips scripts/setup.sh (a machine that is already set up).
set -euo pipefail
cd "$(dirname "$0")/.."
# the agent under test is this checkout's (also for the agent processes the tests start), whichever checkout the
# virtualenv's editable install points at
pytest_here() { PYTHONPATH="$PWD/agent/src${PYTHONPATH:+:$PYTHONPATH}" .venv/bin/pytest -p no:cacheprovider "$@"; }
QUICK_TESTS=(tests/agent/test_policy.py tests/agent/test_policy_regen.py tests/agent/test_input_hardening.py
             tests/agent/test_auth_settings.py tests/agent/test_pull_decisions.py)

if [ "${1:-}" = quick ]; then
  shift
  started=$SECONDS
  [ "${DTMA_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh
  echo "== ansible-test sanity"
  bash scripts/ansible-test.sh sanity --python 3.11
  echo "== ansible-test units"
  bash scripts/ansible-test.sh units --python 3.11
  echo "== antsibull-changelog lint"
  .venv/bin/antsibull-changelog lint
  echo "== pytest: the command policy, and the agent's routes that start no containers"
  pytest_here "${QUICK_TESTS[@]}" "$@"
  echo "quick: everything passed in $((SECONDS - started)) s"
  exit 0
fi

[ "${DTMA_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh
echo "== ansible-test sanity"
bash scripts/ansible-test.sh sanity --python 3.11
if [ -d tests/unit ]; then
  echo "== ansible-test units"
  bash scripts/ansible-test.sh units --python 3.11
fi
echo "== ansible-core matrix: sanity and units on the other releases requires_ansible claims"
bash scripts/ansible-matrix.sh
echo "== ansible-test integration targets (tests/integration/targets: a real agent, real Docker)"
bash scripts/integration-targets.sh
echo "== pytest (agent and modules, real Docker)"
pytest_here "$@"
echo "== ansible-lint (production profile) and molecule (roles/dtma on real systemd)"
DTMA_SKIP_SETUP=1 bash scripts/molecule.sh default
DTMA_SKIP_SETUP=1 bash scripts/molecule.sh alternative
DTMA_SKIP_SETUP=1 bash scripts/molecule.sh index
DTMA_SKIP_SETUP=1 bash scripts/molecule.sh docker
ANSIBLE_COLLECTIONS_PATH="${DTMA_CACHE_DIR:-$HOME/.cache/dtma}/collections" .venv/bin/ansible-lint roles playbooks
echo "== the main job: scripts/demo.sh (droplet, install.yml, deploy_mcp_group.yml, diagnostics.yml), twice"
trap 'bash scripts/demo.sh stop >/dev/null 2>&1 || true' EXIT
bash scripts/demo.sh
# the second run converges to the same state: nothing may change
bash scripts/demo.sh | tee .demo/second-run.log
if grep -E 'changed=[1-9]' .demo/second-run.log; then echo "test.sh: the second run of the main job changed something" >&2; exit 1; fi
echo "== restart.yml on the droplet: through the API, then for a hung agent (SIGSTOP) over the host's connection"
bash scripts/demo.sh playbook playbooks/restart.yml | tee .demo/restart-api.log
grep -q "restarted through the API" .demo/restart-api.log
/usr/bin/docker exec "${DTMA_DROPLET_NAME:-dtma-droplet}" systemctl kill --signal=SIGSTOP dtma
bash scripts/demo.sh playbook playbooks/restart.yml | tee .demo/restart-connection.log
grep -q "restarted over the host's connection" .demo/restart-connection.log
bash scripts/demo.sh playbook playbooks/diagnostics.yml
