"""Switching releases under DTMA_HOME: releases/<version>/, with `current` and `previous` symlinks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .errors import ApiError


def _link_target(link: Path) -> str | None:
    return os.readlink(link) if link.is_symlink() else None


def _atomic_symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)  # rename(2) is atomic: readers see the old or the new target, never neither


def release_of(home: Path, link_name: str) -> str | None:
    target = _link_target(home / link_name)
    return Path(target).name if target else None


def switch(home: Path | None, version: str) -> dict:
    if home is None:
        raise ApiError(409, "redeploy unavailable", "DTMA_HOME is not set, so there are no releases to switch between")
    releases = home / "releases"
    if version == "previous":
        version = release_of(home, "previous") or ""
        if not version:
            raise ApiError(404, "no previous release", f"{home / 'previous'} does not exist")
    target = releases / version
    if not target.is_dir():
        known = sorted(p.name for p in releases.iterdir()) if releases.is_dir() else []
        raise ApiError(404, "unknown version", f"no release {version!r} under {releases}; known: {', '.join(known) or 'none'}")
    current = release_of(home, "current")
    if current == version:
        return {"changed": False, "version": version, "current": version, "previous": release_of(home, "previous")}
    binary = target / "bin" / "dtma-agent"
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
        failure = None if done.returncode == 0 else f"exited {done.returncode}: {(done.stderr or done.stdout).strip()[:500]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        failure = str(exc)
    if failure:
        raise ApiError(422, "release not runnable", f"{binary} --version failed ({failure}); current release kept")
    if current:
        _atomic_symlink(home / "previous", f"releases/{current}")
    _atomic_symlink(home / "current", f"releases/{version}")
    return {"changed": True, "version": version, "current": version, "previous": current,
            "reported_version": done.stdout.strip()}
