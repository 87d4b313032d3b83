"""System metrics from psutil: no shelling out."""

from __future__ import annotations

import os
import platform
import sys
import time

import psutil


def system_metrics(disk_mount: str = "/") -> dict:
    mem = psutil.virtual_memory()
    disk = psutil.disk_usage(disk_mount)
    return {
        # since the previous call (non-blocking); the first call after start reports 0.0
        "cpu_load_percent": psutil.cpu_percent(interval=None),
        "memory": {"total_bytes": mem.total, "used_bytes": mem.used, "free_bytes": mem.available,
                   "active_bytes": getattr(mem, "active", mem.used)},
        "disk": {"mount": disk_mount, "total_bytes": disk.total, "used_bytes": disk.used, "free_bytes": disk.free},
    }


def uptime() -> dict:
    boot = psutil.boot_time()
    return {"system_seconds": round(time.time() - boot), "boot_time": boot,
            "agent_seconds": round(time.time() - psutil.Process().create_time(), 1)}


def load() -> dict:
    one, five, fifteen = os.getloadavg()
    return {"load1": one, "load5": five, "load15": fifteen, "cpu_count": psutil.cpu_count()}


def top_processes(limit: int = 10) -> list[dict]:
    procs = []
    for p in psutil.process_iter(["pid", "name", "username", "memory_info", "cpu_percent"]):
        info = p.info
        rss = info["memory_info"].rss if info.get("memory_info") else 0
        procs.append({"pid": info["pid"], "name": info["name"], "user": info.get("username"),
                      "rss_bytes": rss, "cpu_percent": info.get("cpu_percent") or 0.0})
    procs.sort(key=lambda p: p["rss_bytes"], reverse=True)
    return procs[:limit]


def port_status(port: int) -> dict:
    """Whether something listens on the agent's port, from the kernel's socket table."""
    addresses = []
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                addresses.append(f"{conn.laddr.ip}:{conn.laddr.port}")
    except psutil.AccessDenied as exc:
        return {"port": port, "listening": None, "reason": f"socket table not readable: {exc}"}
    return {"port": port, "listening": bool(addresses), "addresses": sorted(set(addresses))}


def runtime_environment() -> dict:
    return {"runtime": "python", "runtime_version": platform.python_version(), "python_version": platform.python_version(),
            "platform": sys.platform, "arch": platform.machine(), "pid": os.getpid(), "hostname": platform.node()}
