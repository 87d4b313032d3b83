#!/usr/bin/env bash
# Runs a molecule scenario of roles/dtma against real systemd in a local container:
#   bash scripts/molecule.sh [scenario] [molecule action, default: test] [-- ansible-playbook args]
# Installs what it needs: the project setup (Docker engine, .venv, local images incl.
# local/debian-systemd:bookworm), molecule + the docker driver + ansible-lint in .venv, and the
# collections the driver needs (community.docker, ansible.posix). Galaxy is unreachable, so those two
# come out of the `ansible` package wheel from PyPI, unpacked outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
scenario=${1:-default}
action=${2:-test}
ANSIBLE_PKG_VERSION=10.7.0   # ships community.docker 3.13.x (>= 3.10.2) and ansible.posix 1.6.x

if [ "${DTMA_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup.sh
fi
if [ ! -x .venv/bin/molecule ] || ! .venv/bin/python -c 'import molecule_plugins.docker' 2>/dev/null || [ ! -x .venv/bin/ansible-lint ]; then
  echo "molecule.sh: installing molecule, molecule-plugins[docker], ansible-lint into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check molecule 'molecule-plugins[docker]' ansible-lint \
    'ansible-core>=2.17,<2.20' 2>&1 | { grep -v '^WARNING: Location' || true; }
fi

cache=${DTMA_CACHE_DIR:-$HOME/.cache/dtma}
colls="$cache/collections"
if [ ! -f "$colls/ansible_collections/community/docker/MANIFEST.json" ] || \
   [ ! -f "$colls/ansible_collections/ansible/posix/MANIFEST.json" ]; then
  echo "molecule.sh: unpacking community.docker and ansible.posix from ansible==$ANSIBLE_PKG_VERSION"
  mkdir -p "$cache/dl" "$colls"
  whl="$cache/dl/ansible-$ANSIBLE_PKG_VERSION-py3-none-any.whl"
  [ -f "$whl" ] || .venv/bin/pip download --quiet --disable-pip-version-check --no-deps \
    "ansible==$ANSIBLE_PKG_VERSION" -d "$cache/dl"
  rm -rf "$colls/ansible_collections/community/docker" "$colls/ansible_collections/ansible/posix"
  .venv/bin/python - "$whl" "$colls" <<'PY'
import sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist()
             if n.startswith(("ansible_collections/community/docker/", "ansible_collections/ansible/posix/"))]
    z.extractall(dest, names)
PY
fi
# this repository, as the collection agentopia.dtma
mkdir -p "$colls/ansible_collections/agentopia"
ln -sfn "$repo" "$colls/ansible_collections/agentopia/dtma"

export ANSIBLE_COLLECTIONS_PATH="$colls"
export ANSIBLE_ROLES_PATH="$repo/roles"
export PATH="$repo/.venv/bin:$PATH"
export VIRTUAL_ENV="$repo/.venv"
export MOLECULE_NO_LOG=${MOLECULE_NO_LOG:-false}
cd roles/dtma
start=$(date +%s)
rc=0
molecule "$action" -s "$scenario" "${@:3}" || rc=$?
echo "molecule.sh: molecule $action -s $scenario exited $rc after $(( $(date +%s) - start )) s"
exit "$rc"
