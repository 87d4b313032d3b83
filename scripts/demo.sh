#!/usr/bin/env bash
# The main job, the way an operator runs it, on a local default: a "droplet" (a Debian bookworm
# container with systemd as PID 1 and sshd, the host's Docker engine reached through its socket), then
# with ansible-playbook over SSH: playbooks/install.yml (the agent as a hardened systemd service),
# playbooks/deploy_mcp_group.yml (a demo MCP group, waited for until each server answers MCP) and
# playbooks/diagnostics.yml (the per-host summary). Re-running converges again (nothing changes).
#   scripts/demo.sh        bring it all up
#   scripts/demo.sh stop   remove the demo group (through the agent) and the droplet
#   scripts/demo.sh playbook playbooks/restart.yml [args]   any playbook against the running droplet
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
STATE=${DTMA_DEMO_DIR:-$repo/.demo}
NAME=${DTMA_DROPLET_NAME:-dtma-droplet}
SSH_PORT=${DTMA_DROPLET_SSH_PORT:-2222}
PORT=${DTMA_PORT:-30000}
DOCKER=/usr/bin/docker

export ANSIBLE_COLLECTIONS_PATH="$STATE/collections"
export ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
# The demo MCP group (deploy_mcp_group.yml has no default group) goes to every playbook; DTMA_DEMO_VARS_FILE:
# extra variables for every playbook (-e @file, given after the demo group, so they win), e.g. another group name
# and ports so that a second droplet (tests/confinement) does not collide with this one on the shared Docker engine
extra=(-e "@$repo/playbooks/vars/demo_mcp_group.yml")
[ -n "${DTMA_DEMO_VARS_FILE:-}" ] && extra+=(-e "@$DTMA_DEMO_VARS_FILE")
playbook() { "${DTMA_VENV:-.venv}/bin/ansible-playbook" -i "$STATE/inventory.yml" "${extra[@]}" "$@"; }

if [ "${1:-}" = playbook ]; then
  [ -f "$STATE/inventory.yml" ] || { echo "demo: no droplet inventory; run scripts/demo.sh first" >&2; exit 1; }
  shift
  playbook "$@"
  exit
fi

if [ "${1:-}" = stop ]; then
  if "$DOCKER" inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null | grep -q true; then
    playbook playbooks/deploy_mcp_group.yml -e dtma_mcp_group_state=absent || echo "demo: could not remove the group through the agent" >&2
  fi
  "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
  echo "demo stopped: droplet $NAME removed"
  exit 0
fi

[ "${DTMA_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh
mkdir -p "$STATE/collections/ansible_collections/agentopia" "$STATE/tokens" && chmod 700 "$STATE"
ln -sfn "$repo" "$STATE/collections/ansible_collections/agentopia/dtma"
[ -f "$STATE/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C dtma-demo -f "$STATE/id_ed25519"

# The droplet: what a fresh cloud VM gives us (systemd, sshd, root's authorized key, Docker's socket).
if [ "$("$DOCKER" inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" != true ]; then
  "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
  # the three security-opts let bubblewrap (the exec sandbox) work as on a real VM, which has no Docker confinement
  "$DOCKER" run -d --name "$NAME" --hostname droplet-1 --cap-add SYS_ADMIN --cgroupns=host \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v /var/run/docker.sock:/var/run/docker.sock \
    --tmpfs /run --tmpfs /run/lock -p "127.0.0.1:$SSH_PORT:22" -p "127.0.0.1:$PORT:$PORT" \
    local/debian-systemd:bookworm >/dev/null
  for _ in $(seq 1 50); do
    "$DOCKER" exec "$NAME" systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' && break; sleep 0.2
  done
  # host keys per droplet (the image's would be shared by every container), then sshd with our key
  "$DOCKER" exec "$NAME" sh -c 'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && install -d -m 700 /root/.ssh'
  "$DOCKER" cp "$STATE/id_ed25519.pub" "$NAME:/root/.ssh/authorized_keys"
  "$DOCKER" exec "$NAME" sh -c 'chown root:root /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys && systemctl restart ssh'
  : >"$STATE/known_hosts"
  echo "demo: droplet $NAME up (ssh root@127.0.0.1 -p $SSH_PORT)"
fi
for _ in $(seq 1 50); do
  ssh-keyscan -p "$SSH_PORT" -t ed25519 127.0.0.1 2>/dev/null >"$STATE/known_hosts.new" && [ -s "$STATE/known_hosts.new" ] && break
  sleep 0.2
done
mv "$STATE/known_hosts.new" "$STATE/known_hosts"

cat >"$STATE/inventory.yml" <<EOF
dtma_hosts:
  hosts:
    droplet-1:
      ansible_host: 127.0.0.1
      ansible_port: $SSH_PORT
  vars:
    ansible_user: root
    ansible_python_interpreter: /usr/bin/python3
    ansible_ssh_private_key_file: $STATE/id_ed25519
    ansible_ssh_common_args: -o UserKnownHostsFile=$STATE/known_hosts -o StrictHostKeyChecking=yes
    dtma_port: $PORT
    dtma_generate_token: true
    dtma_token_file: $STATE/tokens/droplet-1.token
EOF

echo "== playbooks/install.yml"
playbook playbooks/install.yml
echo "== playbooks/deploy_mcp_group.yml"
playbook playbooks/deploy_mcp_group.yml
echo "== playbooks/diagnostics.yml"
playbook playbooks/diagnostics.yml
echo "demo: agent at http://127.0.0.1:$PORT on droplet $NAME (token in $STATE/tokens/droplet-1.token)."
echo "      inventory: $STATE/inventory.yml (ANSIBLE_COLLECTIONS_PATH=$STATE/collections); stop with: scripts/demo.sh stop"
