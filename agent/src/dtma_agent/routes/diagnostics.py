from __future__ import annotations

import shutil
import subprocess
from typing import Annotated, Literal, Optional

import psutil
from fastapi import APIRouter, Query, Request

from .. import audit, metrics
from .. import docker_state as ds
from ..docker_service import docker_failures
from ..errors import error_response, ok
from ..logbuffer import RING
from ..sdk import docker
from .common import QueryInt

router = APIRouter(prefix="/diagnostics", tags=["diagnostics"])


@router.get("/docker", summary="Docker version, info counts and containers")
def docker_diagnostics(request: Request):
    try:
        version, info, listed = request.app.state.docker.engine()
    except docker_failures() as exc:
        diagnostics = {"docker_version": None, "docker_info_success": False, "docker_info": {}, "containers": [],
                       "error": str(exc)}
        return error_response(503, "docker unavailable", str(exc), diagnostics=diagnostics)
    keys = ("ServerVersion", "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Images",
            "Driver", "CgroupVersion", "OperatingSystem", "KernelVersion", "NCPU", "MemTotal")
    views = []
    for c in listed:
        view = ds.container_view(c)
        view["managed"] = (c.get("Labels") or {}).get(ds.MANAGED_BY) == ds.MANAGED_VALUE
        views.append(view)
    return ok(diagnostics={"docker_version": version.get("Version"), "docker_api_version": version.get("ApiVersion"),
                           "docker_info_success": True, "docker_info": {k: info.get(k) for k in keys},
                           "containers": views})


@router.get("/system", summary="Uptime, load, memory, disk, top processes, the agent's port, runtime")
def system_diagnostics(request: Request):
    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    disks = []
    for part in psutil.disk_partitions(all=False):
        try:
            use = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        disks.append({"mount": part.mountpoint, "device": part.device, "fstype": part.fstype, "total_bytes": use.total,
                      "used_bytes": use.used, "free_bytes": use.free, "percent": use.percent})
    return ok(diagnostics={
        "uptime": metrics.uptime(),
        "load": metrics.load(),
        "disk_usage": disks,
        "memory_info": {"total_bytes": mem.total, "available_bytes": mem.available, "used_bytes": mem.used,
                        "percent": mem.percent, "swap_total_bytes": swap.total, "swap_used_bytes": swap.used},
        "top_processes": metrics.top_processes(),
        "dtma_port_status": metrics.port_status(request.app.state.settings.port),
        "environment": metrics.runtime_environment(),
    })


def service_journal(unit: str, lines: int) -> dict:
    """The unit's journal, read with journalctl (argv, no shell) when journald is there and readable."""
    journalctl = shutil.which("journalctl")
    if not journalctl:
        return {"available": False, "reason": "journalctl is not installed on this host"}
    try:
        done = subprocess.run([journalctl, "--no-pager", "-o", "short-iso", "-u", unit, "-n", str(lines)],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"available": False, "reason": f"journalctl failed: {exc}"}
    text = done.stdout.strip()
    if done.returncode != 0 or not text or text.startswith("No journal files") or text == "-- No entries --":
        reason = (done.stderr.strip() or text or f"journalctl exited {done.returncode}").splitlines()[0]
        return {"available": False, "unit": unit, "reason": reason}
    return {"available": True, "unit": unit, "source": "journald", "lines": text.splitlines()[-lines:]}


@router.get("/logs", summary="The agent's own log, its service journal and each MCP container's last lines")
def log_diagnostics(request: Request,
                    lines: Annotated[QueryInt, Query(ge=1, le=10000, description="lines per source")] = 100):
    mcp: dict = {}
    svc = request.app.state.docker  # not `docker`: the handlers below need the docker module
    try:
        for server in svc.managed(kind=ds.KIND_MCP):
            try:
                mcp[server["name"]] = svc.logs(server, lines)
            except docker.errors.NotFound:
                continue  # removed since it was listed
            except docker.errors.APIError as exc:
                # e.g. 409 while it is being removed, or a log driver that cannot be read: that container's
                # failure, not "docker unavailable" for all of them
                mcp[server["name"]] = {"error": str(exc.explanation or exc)}
    except docker_failures() as exc:
        mcp = {"error": f"docker unavailable: {exc}"}
    return ok(logs={"dtma_service": service_journal(request.app.state.settings.service_unit, lines),
                    "mcp_containers": mcp, "application_logs": RING.tail(lines),
                    "audit": audit.RECENT.tail(lines)})


AuditVerdict = Literal[audit.VERDICTS]
VerdictQuery = Query(max_length=len(audit.VERDICTS),
                     description="verdicts to return (repeat the parameter); default blocked and docker_denied")
LimitQuery = Query(ge=1, le=audit.RECENT_CAPACITY, description="entries to return at most")


@router.get("/audit", summary="The newest audit entries of this agent process with the given verdicts (default: "
            "the blocked ones), newest first")
def audit_diagnostics(verdict: Annotated[Optional[list[AuditVerdict]], VerdictQuery] = None,
                      limit: Annotated[QueryInt, LimitQuery] = 20):
    verdicts = set(verdict or ("blocked", "docker_denied"))
    entries = audit.recent(verdicts, limit)
    # the in-memory trail is this process's last RECENT_CAPACITY entries: say so, a caller must not read "none"
    # as "never"
    return ok(entries=entries, count=len(entries), verdicts=sorted(verdicts),
              source=f"the last {audit.RECENT_CAPACITY} audit entries of this agent process (since its start)")
