#!/usr/bin/env bash
# Runs `ansible-test ARGS…` on a copy of this repository laid out as ansible_collections/agentopia/dtma
# (ansible-test needs that path). Works offline: ansible-test bootstraps pip in its virtualenvs with a
# get-pip script from a site that is not reachable here, so a stand-in that installs pip from PyPI is put in
# its cache first.
#   DTMA_ANSIBLE_VENV=DIR   run the ansible-test of the virtualenv DIR (default .venv): the ansible-core matrix of
#                           scripts/ansible-matrix.sh
#   DTMA_INTEGRATION_CONFIG=FILE   becomes tests/integration/integration_config.yml of the copy (the agent's URL and
#                           token for the integration targets; tests/integration/run_targets.py writes it)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${DTMA_ANSIBLE_VENV:-$repo/.venv}
cache="$HOME/.ansible/test/cache"
# the pip version this ansible-test bootstraps its virtualenvs with (it differs between ansible-core releases)
pip_version=$(sed -n "/def get_venv_packages/,/^def /s/.*pip='\([0-9.]*\)'.*/\1/p" \
  "$venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -n 1)
if [ -z "$pip_version" ]; then echo "ansible-test.sh: cannot tell which pip the ansible-test in $venv wants" >&2; exit 1; fi
if [ ! -f "$cache/get_pip_${pip_version//./_}.py" ]; then
  mkdir -p "$cache/wheels"
  if ! ls "$cache"/wheels/pip-24.2-*.whl >/dev/null 2>&1; then
    .venv/bin/pip download --quiet --disable-pip-version-check --no-deps pip==24.2 -d "$cache/wheels" 2>&1 | { grep -v '^WARNING' || true; }
  fi
  # pip 24.2 (from the wheel) installs the pip, setuptools and wheel versions ansible-test asks for, from PyPI
  cat >"$cache/get_pip_${pip_version//./_}.py" <<'PY'
"""Offline stand-in for ansible-test's get-pip.py: installs what it asks for with pip 24.2 from a wheel in the
cache's wheels folder."""
import glob
import os
import sys

wheel = glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "wheels", "pip-24.2-*.whl"))[0]
sys.path.insert(0, wheel)
from pip._internal.cli.main import main  # noqa: E402

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall", *args]))
PY
fi
# a private copy per run, so parallel runs never see each other's files
root=$(mktemp -d /tmp/dtma-ansible-test.XXXXXX)
trap 'rm -rf "$root"' EXIT
dest="$root/ansible_collections/agentopia/dtma"
mkdir -p "$dest"
# tracked and untracked-but-not-ignored files, as they are in the work tree (deleted ones are skipped)
git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$dest"
if [ -n "${DTMA_INTEGRATION_CONFIG:-}" ]; then
  install -m 0600 "$DTMA_INTEGRATION_CONFIG" "$dest/tests/integration/integration_config.yml"
fi
cd "$dest"
PATH="$venv/bin:$PATH" ansible-test "$@"
