#!/usr/bin/env bash
# Installs and starts everything the demo and the tests need, on a fresh Debian 12 machine as root:
# Debian's docker.io (started if no engine answers), the project virtualenv, and the local images.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=/usr/bin/docker

missing=()
# docker-registry: a real registry with authentication on loopback for the image pull tests (each test session runs
# its own; the package's own service is not wanted); prometheus: the server that scrapes the agent in tests/metrics
# and promtool (likewise: the tests start their own, the package's service is not wanted); chromium,
# chromium-driver: the health report's page test
for pkg in docker.io iproute2 bubblewrap busybox-static mmdebstrap openssh-server openssh-client shellcheck curl gpg docker-registry \
           prometheus chromium chromium-driver; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1
  if [ -d /run/systemd/system ]; then
    for service in docker-registry prometheus; do
      if [[ " ${missing[*]} " == *" $service "* ]]; then systemctl disable --now "$service" >/dev/null 2>&1 || true; fi
    done
  fi
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
  echo "setup: starting dockerd"
  setsid /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 1 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 0.5; done
  "$DOCKER" info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi

# A bridge whose address was never set takes the lowest MAC among its ports, so a container joining docker0 can
# change the gateway's MAC under the running ones: their packets to the host (replies through docker-proxy) then go
# to the old address until ARP notices, tens of seconds (seen as a burst of requests all timing out). A set address
# stays put.
if [ -e /sys/class/net/docker0 ] && [ "$(cat /sys/class/net/docker0/addr_assign_type)" != 3 ]; then
  ip link set dev docker0 address "$(od -An -N5 -tx1 /dev/urandom | tr -s ' ' ':' | sed 's/^:/02:/')"
fi

# the identity the tests' exec sandbox runs commands as (the role creates it on a droplet)
id dtma-exec >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent \
  --shell /usr/sbin/nologin dtma-exec

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 | { grep -v '^WARNING: Location' || true; }

bash scripts/images.sh
