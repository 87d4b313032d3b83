"""The audit log's disk is full (a 256 KiB tmpfs over the agent's log dir, filled): the agent keeps serving,
GET /health says so (HTTP 200, status "degraded", audit_log.writable false with the error), the journal says so, and
once there is room again the next audit line is written and /health is "ok" again."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.timeout(300)

ENOSPC = "No space left on device"


def log_dir(d) -> str:
    """DTMA_LOG_DIR as the running agent has it (its environment, from the unit's env file)."""
    environ = d.root("tr '\\0' '\\n' < /proc/$(systemctl show dtma -p MainPID --value)/environ", check=True).stdout
    found = [line.split("=", 1)[1] for line in environ.splitlines() if line.startswith("DTMA_LOG_DIR=")]
    assert found and found[0].startswith("/"), f"the agent has no DTMA_LOG_DIR: {environ}"
    return found[0]


def run_true(d) -> None:
    code, body = d.execute("true")
    assert code == 200 and isinstance(body, dict) and body.get("exit_code") == 0, f"exec `true`: {code} {body}"


def test_full_audit_disk_degrades_health_and_recovers(droplet):
    path = log_dir(droplet)
    owner = droplet.root(f"stat -c %U:%G {path}", check=True).stdout.strip()
    since = droplet.root("date +%s", check=True).stdout.strip()
    # the mount must be in place before the unit starts: its mount namespace is set up then
    droplet.root(f"systemctl stop dtma && mount -t tmpfs -o size=256k,mode=0750 tmpfs {path} && chown {owner} {path} "
                 "&& systemctl start dtma", check=True)
    try:
        assert droplet.wait_healthy(30), "the agent did not come up on the small log dir"
        fill = droplet.root(f"dd if=/dev/zero of={path}/fill bs=4k")
        assert fill.returncode != 0 and ENOSPC in fill.stderr, f"dd did not fill the disk: {fill.stderr}"
        assert droplet.root(f"df --output=avail -B1 {path} | tail -1").stdout.strip() == "0"
        for _attempt in range(3):
            run_true(droplet)
        code, health = droplet.health()
        print(f"/health with a full audit disk: {code} {health}")
        assert code == 200, f"/health answered {code}: {health}"
        assert health.get("status") == "degraded", health
        audit = health.get("audit_log") or {}
        assert audit.get("writable") is False and ENOSPC in (audit.get("error") or ""), f"audit_log: {audit}"
        assert audit.get("path", "").startswith(path), f"audit_log.path: {audit}"
        journal = droplet.root(f"journalctl -u dtma --since @{since} --no-pager -o cat", check=True).stdout
        said = [line for line in journal.splitlines() if "audit log" in line.lower() and ENOSPC in line]
        assert said, f"no journal line mentions the audit log and {ENOSPC!r}:\n{journal[-3000:]}"

        droplet.root(f"rm -f {path}/fill", check=True)
        run_true(droplet)
        code, health = droplet.health()
        assert code == 200 and health.get("status") == "ok" and (health.get("audit_log") or {}).get("writable") is True, \
            f"/health once there is room again: {code} {health}"
        written = droplet.root(f"cat {path}/audit.log").stdout
        assert '"command":"true"' in written, f"the audit line of the last exec is not in the log: {written[-1000:]}"
    finally:
        droplet.root(f"systemctl stop dtma; umount {path}; systemctl start dtma")
        time.sleep(0.5)
        assert droplet.root(f"findmnt -n {path}").stdout == "", f"the tmpfs is still mounted on {path}"
