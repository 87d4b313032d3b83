#!/usr/bin/env bash
# Builds the local images the demo, tests and benchmarks use. No registry is reachable, so every
# image is built here: busybox from Debian's busybox-static, a Debian+Python base with mmdebstrap,
# and a real MCP server from the official `mcp` SDK installed from wheels downloaded on the host.
# Idempotent: an image built from the same recipe is kept (FORCE=1 rebuilds). Each image carries the label
# agentopia.recipe, a hash of this script and images/: an image built by an older recipe is rebuilt, so a machine
# that kept its images behaves like a fresh one.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=/usr/bin/docker
recipe=$(find scripts/images.sh images -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
have() {
  [ "${FORCE:-0}" != 1 ] &&
    [ "$("$DOCKER" image inspect -f '{{ index .Config.Labels "agentopia.recipe" }}' "$1" 2>/dev/null)" = "$recipe" ]
}
label=(--label "agentopia.recipe=$recipe")
import_label=(--change "LABEL agentopia.recipe=$recipe")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! have local/busybox:latest; then
  mkdir -p "$work/bb/bin"
  cp /bin/busybox "$work/bb/bin/busybox"
  for app in sh sleep httpd echo cat ls env true false nc wc; do ln -s busybox "$work/bb/bin/$app"; done
  tar -C "$work/bb" -c . | "$DOCKER" import "${import_label[@]}" -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - local/busybox:latest >/dev/null
  echo "built local/busybox:latest"
fi

if ! have local/debian-python:bookworm; then
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$work/rootfs" /etc/apt/sources.list.d/debian.sources
  tar -C "$work/rootfs" -c . | "$DOCKER" import "${import_label[@]}" - local/debian-python:bookworm >/dev/null
  rm -rf "$work/rootfs"
  echo "built local/debian-python:bookworm"
fi

if ! have local/mcp-demo:latest; then
  ctx="$work/mcp"
  mkdir -p "$ctx/wheels"
  cp images/mcp-demo/Dockerfile images/mcp-demo/server.py "$ctx/"
  pip download --quiet --disable-pip-version-check mcp -d "$ctx/wheels" --only-binary=:all: \
    --python-version 3.11 --implementation cp --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 2>&1 | grep -v '^WARNING' || true
  DOCKER_BUILDKIT=0 "$DOCKER" build --quiet --network none "${label[@]}" -t local/mcp-demo:latest "$ctx" >/dev/null
  echo "built local/mcp-demo:latest"
fi

# Debian bookworm with systemd as PID 1, for the role's molecule scenarios (roles/dtma/molecule/).
# No Docker inside: the host's socket is mounted in. STOPSIGNAL needs a Dockerfile (docker import refuses it).
if ! have local/debian-systemd:bookworm; then
  mmdebstrap --quiet --variant=minbase \
    --include=systemd,systemd-sysv,python3,python3-venv,python3-pip,python3-apt,sudo,dbus,procps,iproute2,openssh-server,ca-certificates,bubblewrap,curl \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$work/sysd" /etc/apt/sources.list.d/debian.sources
  tar -C "$work/sysd" -c . | "$DOCKER" import --change 'CMD ["/lib/systemd/systemd"]' - local/debian-systemd:base >/dev/null
  rm -rf "$work/sysd"
  mkdir -p "$work/sysd-ctx"
  # the docker CLI (from the host's docker.io) as a droplet has it; the engine is the host's, through its socket
  cp /usr/bin/docker "$work/sysd-ctx/docker"
  printf 'FROM local/debian-systemd:base\nCOPY docker /usr/bin/docker\nSTOPSIGNAL SIGRTMIN+3\n' >"$work/sysd-ctx/Dockerfile"
  DOCKER_BUILDKIT=0 "$DOCKER" build --quiet "${label[@]}" -t local/debian-systemd:bookworm "$work/sysd-ctx" >/dev/null
  echo "built local/debian-systemd:bookworm"
fi

# Ubuntu jammy with systemd as PID 1, the role's second platform (molecule default). The archive is verified
# with the Ubuntu Archive Automatic Signing Key (2018), taken from the ubuntu-keyring package and pinned here
# by fingerprint: Debian does not ship that key, and no key server is reachable from CI.
UBUNTU_ARCHIVE_KEY=F6ECB3762474EDA9D21B7022871920D1991BC93C
if ! have local/ubuntu-systemd:jammy; then
  mkdir -p "$work/ukr/gnupg" && chmod 700 "$work/ukr/gnupg"
  curl -fsS -o "$work/ukr/keyring.deb" \
    http://archive.ubuntu.com/ubuntu/pool/main/u/ubuntu-keyring/ubuntu-keyring_2021.03.26_all.deb
  dpkg-deb -x "$work/ukr/keyring.deb" "$work/ukr/deb"
  gpg --homedir "$work/ukr/gnupg" --quiet --import "$work/ukr/deb/usr/share/keyrings/ubuntu-archive-keyring.gpg" 2>/dev/null
  gpg --homedir "$work/ukr/gnupg" --export "$UBUNTU_ARCHIVE_KEY" >"$work/ukr/archive.gpg"
  [ -s "$work/ukr/archive.gpg" ] || { echo "images.sh: the Ubuntu archive key $UBUNTU_ARCHIVE_KEY is not in ubuntu-keyring" >&2; exit 1; }
  mmdebstrap --quiet --variant=minbase --keyring="$work/ukr/archive.gpg" --components=main,universe \
    --include=systemd,systemd-sysv,python3,python3-venv,python3-pip,python3-apt,sudo,dbus,procps,iproute2,openssh-server,ca-certificates,bubblewrap,curl \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    jammy "$work/jammy" http://archive.ubuntu.com/ubuntu
  tar -C "$work/jammy" -c . | "$DOCKER" import --change 'CMD ["/lib/systemd/systemd"]' - local/ubuntu-systemd:base >/dev/null
  rm -rf "$work/jammy" "$work/ukr"
  mkdir -p "$work/jammy-ctx"
  printf 'FROM local/ubuntu-systemd:base\nSTOPSIGNAL SIGRTMIN+3\n' >"$work/jammy-ctx/Dockerfile"
  DOCKER_BUILDKIT=0 "$DOCKER" build --quiet "${label[@]}" -t local/ubuntu-systemd:jammy "$work/jammy-ctx" >/dev/null
  echo "built local/ubuntu-systemd:jammy"
fi
