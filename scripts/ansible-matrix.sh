#!/usr/bin/env bash
# ansible-test sanity and units on the ansible-core releases meta/runtime.yml's requires_ansible claims besides the
# .venv's own (scripts/test.sh runs the full sanity and units there). Each release gets a virtualenv under
# ${DTMA_CACHE_DIR:-~/.cache/dtma}/ansible-core-X.Y, made from PyPI the first time. ansible-core 2.20 and later need a
# Python >= 3.12 on the controller; Debian 12 has 3.11, so it is taken from pyenv (or any python3.12 on PATH), and
# this script fails when there is none: a release we claim is a release we test.
#   newest release: the full sanity and units
#   older releases: units, and the sanity tests that judge the collection against that release's own code and rules
#     (validate-modules, ansible-doc, import, compile, runtime-metadata, action-plugin-docs); the linters (pylint,
#     pep8, yamllint...) only change with their own pinned versions, and run in full on the newest and on the .venv's
# Usage: scripts/ansible-matrix.sh [X.Y ...]   (default: every release below)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${DTMA_CACHE_DIR:-$HOME/.cache/dtma}
RELEASES=(2.17 2.18 2.20 2.21)
NEWEST=2.21
OLDER_SANITY=(--test validate-modules --test ansible-doc --test import --test compile --test runtime-metadata
              --test action-plugin-docs)
[ $# -gt 0 ] && RELEASES=("$@")

controller_python() {  # the Python version ansible-test runs with for release $1
  case $1 in 2.1[5-9]) echo 3.11 ;; *) echo 3.12 ;; esac
}

find_python() {  # an interpreter of Python $1 that can make a virtualenv (pyenv's shims refuse when not selected)
  local candidate
  for candidate in "$(command -v "python$1" || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1"; do
    if [ -x "$candidate" ] && "$candidate" -c 'import ssl, venv' 2>/dev/null; then echo "$candidate"; return 0; fi
  done
  return 1
}

venv_for() {  # the virtualenv of release $1, made (or completed) from PyPI when needed
  local release=$1 py venv=$cache/ansible-core-$1
  if [ ! -f "$venv/.dtma-complete" ]; then
    py=$(find_python "$(controller_python "$release")") || {
      echo "ansible-matrix: ansible-core $release needs Python $(controller_python "$release"), and there is none" >&2
      return 1; }
    "$py" -m venv --clear "$venv" || return 1
    # pytest-forked: ansible-test < 2.18 runs units with --forked; requests: what the unit tests import
    "$venv/bin/pip" install --quiet --disable-pip-version-check "ansible-core==$release.*" pytest pytest-xdist \
      pytest-forked mock pytest-mock requests 2>&1 | { grep -v '^WARNING: Location' || true; } >&2 || return 1
    touch "$venv/.dtma-complete"
  fi
  echo "$venv"
}

summary=()
failed=0
for release in "${RELEASES[@]}"; do
  started=$SECONDS
  venv=$(venv_for "$release") || { summary+=("ansible-core $release: FAILED (no virtualenv)"); failed=1; continue; }
  version=$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')
  python=$(controller_python "$release")
  if [ "$release" = "$NEWEST" ]; then sanity=(); what="full sanity, units"; else sanity=("${OLDER_SANITY[@]}"); what="sanity ($((${#OLDER_SANITY[@]} / 2)) tests), units"; fi
  echo "== ansible-core $version (Python $python): $what"
  result=passed
  DTMA_ANSIBLE_VENV=$venv bash scripts/ansible-test.sh sanity --python "$python" "${sanity[@]}" || result=FAILED
  DTMA_ANSIBLE_VENV=$venv bash scripts/ansible-test.sh units --python "$python" || result=FAILED
  [ $result = passed ] || failed=1
  summary+=("ansible-core $version: $result ($what) in $((SECONDS - started)) s")
done
echo "== ansible-core matrix"
printf '  %s\n' "${summary[@]}"
exit $failed
