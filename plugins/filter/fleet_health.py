# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
name: fleet_health
short_description: Turn each host's M(agentopia.dtma.dtma_info) result into a fleet health report
version_added: 0.1.0
author: Agentopia engineering (@agentopia)
description:
  - Takes one entry per host, each with the host's name, its agent's address and what
    M(agentopia.dtma.dtma_info) returned for it (gathered with V(health), V(status), V(mcp) and V(audit)), or the
    failed or unreachable result that took its place.
  - Gives every host a status, V(down), V(degraded) or V(healthy), and its problems, worst first, and the fleet a
    summary; C(playbooks/health_report.yml) renders it as one HTML file.
  - A host is V(down) when it has a critical problem (its agent does not answer C(/health) with HTTP 200, Docker is
    unreachable, the host could not be reached, or nothing was gathered), V(degraded) when it has a warning (a
    section could not be gathered, an unhealthy MCP server, a restarting server, the agent reports itself degraded,
    an unhealthy SSH or backend check), V(healthy) otherwise. Blocked commands and a version that differs from the
    fleet's most common one are shown as information and do not change the status.
  - A host without any result is reported V(down), never left out.
options:
  _input:
    description:
      - One dict per host, with C(name), C(address) (shown as is; never put a token in it) and C(result).
    type: list
    elements: dict
    required: true
  generated_at:
    description: When the data was gathered (shown in the report).
    type: str
    default: ''
'''

EXAMPLES = r'''
- name: Render the report
  ansible.builtin.template:
    src: health_report.html.j2
    dest: ./dtma-health-report.html
  vars:
    report: "{{ hosts_and_results | agentopia.dtma.fleet_health(generated_at=now(utc=true).isoformat()) }}"
'''

RETURN = r'''
_value:
  description:
    - C(summary) (counts by status, totals, latency statistics and a histogram of the agents' response times,
      C(api_scale_ms) and C(probe_scale_ms) for latency bars, the fleet's most common version) and C(hosts), worst first, each with C(name),
      C(address), C(status), C(reason), C(problems) (C(severity) V(critical), V(warning) or V(info), and C(text)),
      C(version), C(uptime_s), C(api_ms), C(checks), C(servers), C(groups) and C(blocked).
  type: dict
'''

from collections import Counter

from ansible.errors import AnsibleFilterError

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
STATUS_RANK = {"down": 0, "degraded": 1, "healthy": 2}
HISTOGRAM_BUCKETS = 12


def _problem(severity, text):
    return {"severity": severity, "text": text}


def _checks(health):
    out = []
    for name in ("agent_api", "docker", "ssh", "backend"):
        check = (health.get("checks") or {}).get(name)
        if check:
            out.append({"name": name, "status": check.get("status"), "reason": check.get("reason"),
                        "ms": check.get("response_time_ms")})
    return out


def _servers(mcp):
    servers = []
    for server in (mcp or {}).get("mcp_servers") or []:
        health = server.get("health") or {}
        probe = health.get("probe") or {}
        servers.append({
            "name": server.get("server") or server.get("name"),
            "group": server.get("group_id") or "",
            "state": server.get("state"),
            "status": health.get("status", "unknown"),
            "reason": health.get("reason") or probe.get("reason") or "",
            "restart_count": health.get("restart_count"),
            "probe_ok": probe.get("ok"),
            "latency_ms": probe.get("latency_ms"),
            "tool_count": probe.get("tool_count"),
            "transport": server.get("mcp_transport") or "",
            "image": server.get("image") or "",
        })
    servers.sort(key=lambda s: (s["status"] == "healthy", -(s["restart_count"] or 0), s["group"], s["name"] or ""))
    return servers


def _groups(servers):
    groups = {}
    for server in servers:
        group = groups.setdefault(server["group"], {"id": server["group"], "servers": 0, "healthy": 0, "restarts": 0})
        group["servers"] += 1
        group["healthy"] += server["status"] == "healthy"
        group["restarts"] += server["restart_count"] or 0
    return sorted(groups.values(), key=lambda g: (g["healthy"] == g["servers"], g["id"]))


def _blocked(audit):
    return [{"time": e.get("time"), "command": e.get("command"), "verdict": e.get("verdict"), "rule": e.get("rule"),
             "reason": e.get("reason"), "client": e.get("client"), "token_id": e.get("token_id")}
            for e in (audit or {}).get("entries") or []]


def host_report(entry):
    """One host's status, problems (worst first) and details from its dtma_info result (or what replaced it)."""
    if not isinstance(entry, dict) or not entry.get("name"):
        raise AnsibleFilterError("fleet_health: every entry needs a name, got %r" % (entry,))
    result = entry.get("result")
    if not isinstance(result, dict):
        result = {}
    health = result.get("health") or {}
    checks = _checks(health)
    by_name = dict((c["name"], c) for c in checks)
    agent = health.get("agent") or {}
    servers = _servers(result.get("mcp"))
    blocked = _blocked(result.get("audit"))
    problems = []

    if result.get("unreachable"):
        problems.append(_problem("critical", "unreachable: %s" % (result.get("msg") or "no reason given").strip()))
    elif not health:
        why = result.get("msg") or "no result was gathered (the host failed before its health was checked)"
        problems.append(_problem("critical", "not checked: %s" % why))
    else:
        api = by_name.get("agent_api") or {}
        if api.get("status") != "healthy":
            problems.append(_problem("critical", "agent API: %s" % api.get("reason")))
        docker = by_name.get("docker") or {}
        if docker.get("status") == "unhealthy":
            problems.append(_problem("critical", "Docker: %s" % docker.get("reason")))
        if api.get("status") == "healthy" and result.get("failed"):
            problems.append(_problem("warning", result.get("msg") or "gathering failed"))
        if agent.get("status") == "degraded":
            audit_log = agent.get("audit_log") or {}
            problems.append(_problem("warning", "the agent reports itself degraded%s" % (
                ": audit log %s not writable (%s)" % (audit_log.get("path"), audit_log.get("error"))
                if audit_log.get("writable") is False else "")))
        for name in ("ssh", "backend"):
            if (by_name.get(name) or {}).get("status") == "unhealthy":
                problems.append(_problem("warning", "%s: %s" % (name, by_name[name]["reason"])))
    for server in servers:
        restarts = server["restart_count"] or 0
        if server["status"] != "healthy":
            problems.append(_problem("warning", "MCP server %s (group %s) is %s: %s%s" % (
                server["name"], server["group"], server["status"], server["reason"],
                ", restarted %d times" % restarts if restarts else "")))
        elif restarts:
            problems.append(_problem("warning", "MCP server %s (group %s) restarted %d times: crash-looping?" % (
                server["name"], server["group"], restarts)))
    if blocked:
        latest = blocked[0]
        problems.append(_problem("info", "%d recent blocked command%s (latest: %s, %s)" % (
            len(blocked), "" if len(blocked) == 1 else "s", latest["command"], latest["rule"])))

    problems.sort(key=lambda p: SEVERITY_RANK[p["severity"]])  # stable: each severity keeps its order
    severities = set(p["severity"] for p in problems)
    status = "down" if "critical" in severities else "degraded" if "warning" in severities else "healthy"
    return {
        "name": entry["name"],
        "address": entry.get("address") or "",
        "status": status,
        "reason": problems[0]["text"] if problems and status != "healthy" else "",
        "problems": problems,
        "version": agent.get("version") or (result.get("status") or {}).get("version") or "",
        "uptime_s": agent.get("uptime_s"),
        "api_ms": (by_name.get("agent_api") or {}).get("ms"),
        "checks": checks,
        "servers": servers,
        "groups": _groups(servers),
        "blocked": blocked,
    }


def _percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else None


def _histogram(values, top):
    """HISTOGRAM_BUCKETS equal buckets from 0 to `top` ms; the last one also holds anything above."""
    width = top / HISTOGRAM_BUCKETS
    counts = [0] * HISTOGRAM_BUCKETS
    for value in values:
        counts[min(HISTOGRAM_BUCKETS - 1, int(value / width))] += 1
    return [{"from_ms": round(i * width, 1), "to_ms": round((i + 1) * width, 1), "count": c} for i, c in enumerate(counts)]


def fleet_health(entries, generated_at=""):
    if not isinstance(entries, list):
        raise AnsibleFilterError("fleet_health expects a list of hosts, got %s" % type(entries).__name__)
    hosts = [host_report(e) for e in entries]
    versions = Counter(h["version"] for h in hosts if h["version"])
    common = versions.most_common(1)[0][0] if versions else ""
    for host in hosts:
        if len(versions) > 1 and host["version"] and host["version"] != common:
            host["problems"].append(_problem("info", "agent version %s (most of the fleet runs %s)" % (host["version"], common)))
    hosts.sort(key=lambda h: (STATUS_RANK[h["status"]], h["name"]))
    latencies = [h["api_ms"] for h in hosts if h["api_ms"] is not None and h["status"] != "down"]
    probe_latencies = [s["latency_ms"] for h in hosts for s in h["servers"] if s["latency_ms"] is not None]
    # the agents' and the MCP probes' bars each have a scale: the slowest of their kind (at least 10 ms, so a fast
    # fleet does not look slow); one slow probe does not flatten every agent's bar
    api_scale, probe_scale = max([10.0] + latencies), max([10.0] + probe_latencies)
    counts = Counter(h["status"] for h in hosts)
    return {
        "generated_at": generated_at,
        "summary": {
            "total": len(hosts),
            "down": counts["down"], "degraded": counts["degraded"], "healthy": counts["healthy"],
            "servers": sum(len(h["servers"]) for h in hosts),
            "servers_unhealthy": sum(1 for h in hosts for s in h["servers"] if s["status"] != "healthy"),
            "blocked": sum(len(h["blocked"]) for h in hosts),
            "versions": [{"version": v, "hosts": n} for v, n in versions.most_common()],
            "common_version": common,
            "api_ms_p50": _percentile(latencies, 0.5), "api_ms_p95": _percentile(latencies, 0.95),
            "api_ms_max": max(latencies) if latencies else None,
            "histogram": _histogram(latencies, api_scale),
            "api_scale_ms": api_scale, "probe_scale_ms": probe_scale,
        },
        "hosts": hosts,
    }


class FilterModule(object):
    def filters(self):
        return {"fleet_health": fleet_health}
