# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet_health: each host's status and problems (worst first) from dtma_info results shaped as the module returns
them, and the fleet's summary. The HTML and a real fleet are tested in tests/integration/test_health_report.py."""

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.agentopia.dtma.plugins.filter.fleet_health import fleet_health


def check(status, reason, ms=None):
    return {"status": status, "reason": reason, "response_time_ms": ms}


def healthy_result(version="0.1.0", api_ms=4.0, servers=(), blocked=()):
    return {
        "changed": False,
        "health": {"overall": "healthy", "agent": {"status": "ok", "version": version, "uptime_s": 3700.0},
                   "checks": {"agent_api": check("healthy", "HTTP 200", api_ms), "docker": check("healthy", "ok"),
                              "ssh": check("unknown", "no ssh_host given"), "backend": check("unknown", "no backend URL")}},
        "status": {"version": version},
        "mcp": {"mcp_servers": list(servers), "count": len(servers)},
        "audit": {"entries": list(blocked), "count": len(blocked)},
    }


def server(name, status="healthy", restarts=0, latency=3.5, state="running", reason=None):
    health = {"container": state, "status": status, "restart_count": restarts,
              "probe": {"ok": status == "healthy", "latency_ms": latency, "tool_count": 2}}
    if reason:
        health["reason"] = reason
    return {"server": name, "name": name, "group_id": "g1", "state": state, "mcp_transport": "streamable-http",
            "health": health}


def by_name(report):
    return {h["name"]: h for h in report["hosts"]}


def test_statuses_problems_worst_first_and_summary():
    down_agent = healthy_result()
    down_agent["health"]["checks"]["agent_api"] = check("unhealthy", "the DTMA agent at http://h:30000 did not answer", 1.2)
    down_agent["health"]["agent"] = {}
    blocked = [{"time": "t2", "command": "cat /etc/shadow", "verdict": "blocked", "rule": "deny.secrets"},
               {"time": "t1", "command": "reboot", "verdict": "blocked", "rule": "deny.power"}]
    report = fleet_health([
        {"name": "ok", "address": "http://ok:30000", "result": healthy_result(api_ms=8.0, blocked=blocked)},
        {"name": "loop", "address": "a", "result": healthy_result(servers=[
            server("s-ok"), server("s-loop", "unhealthy", 7, None, "restarting", "container is restarting")])},
        {"name": "restarted", "address": "a", "result": healthy_result(servers=[server("s-r", restarts=2, latency=250.0)])},
        {"name": "dead", "address": "a", "result": down_agent},
        {"name": "lost", "address": "a", "result": {"unreachable": True, "msg": "Failed to connect to the host via ssh"}},
        {"name": "never", "address": "a"},
        {"name": "old", "address": "a", "result": healthy_result(version="0.0.9", api_ms=2.0)},
    ], generated_at="now")
    hosts = by_name(report)
    assert [h["name"] for h in report["hosts"]] == ["dead", "lost", "never", "loop", "restarted", "ok", "old"]
    assert {n: h["status"] for n, h in hosts.items()} == {
        "dead": "down", "lost": "down", "never": "down", "loop": "degraded", "restarted": "degraded",
        "ok": "healthy", "old": "healthy"}
    assert hosts["dead"]["reason"] == "agent API: the DTMA agent at http://h:30000 did not answer"
    assert hosts["lost"]["reason"] == "unreachable: Failed to connect to the host via ssh"
    assert hosts["never"]["reason"].startswith("not checked: no result was gathered")
    assert hosts["loop"]["reason"] == ("MCP server s-loop (group g1) is unhealthy: container is restarting, "
                                       "restarted 7 times")
    assert [s["name"] for s in hosts["loop"]["servers"]] == ["s-loop", "s-ok"]  # the bad server first
    assert hosts["loop"]["groups"] == [{"id": "g1", "servers": 2, "healthy": 1, "restarts": 7}]
    assert "restarted 2 times" in hosts["restarted"]["reason"]
    assert hosts["ok"]["reason"] == "" and hosts["ok"]["problems"] == [
        {"severity": "info", "text": "2 recent blocked commands (latest: cat /etc/shadow, deny.secrets)"}]
    assert [b["command"] for b in hosts["ok"]["blocked"]] == ["cat /etc/shadow", "reboot"]
    assert hosts["old"]["problems"] == [{"severity": "info", "text": "agent version 0.0.9 (most of the fleet runs 0.1.0)"}]
    assert hosts["ok"]["uptime_s"] == 3700.0 and hosts["ok"]["api_ms"] == 8.0

    summary = report["summary"]
    assert (summary["total"], summary["down"], summary["degraded"], summary["healthy"]) == (7, 3, 2, 2)
    assert summary["servers"] == 3 and summary["servers_unhealthy"] == 1 and summary["blocked"] == 2
    assert summary["common_version"] == "0.1.0"
    # down hosts' response times (a refused connection) are not latencies
    assert summary["api_ms_max"] == 8.0 and summary["api_ms_p50"] == 4.0
    assert sum(b["count"] for b in summary["histogram"]) == 4 and summary["histogram"][-1]["to_ms"] == 10.0
    # each kind of bar has its scale: a slow MCP probe does not flatten the agents' bars
    assert summary["api_scale_ms"] == 10.0 and summary["probe_scale_ms"] == 250.0
    assert report["generated_at"] == "now"


def test_a_failed_gather_keeps_the_health_before_it():
    """What dtma_info returns when a later section fails (401): the health is in it, the host is degraded."""
    result = healthy_result()
    for section in ("status", "mcp", "audit"):
        del result[section]
    result.update(failed=True, msg="could not gather the status section from the DTMA agent (GET /status): HTTP 401")
    [host] = fleet_health([{"name": "h", "address": "a", "result": result}])["hosts"]
    assert host["status"] == "degraded" and host["reason"].endswith("HTTP 401")
    assert host["version"] == "0.1.0" and host["servers"] == []


def test_docker_unreachable_and_a_degraded_agent():
    docker_down = healthy_result()
    docker_down["health"]["checks"]["agent_api"] = check("unhealthy", "HTTP 503: the agent answers but reports itself degraded", 3)
    docker_down["health"]["checks"]["docker"] = check("unhealthy", "the agent cannot reach the Docker engine")
    audit_full = healthy_result()
    audit_log = {"path": "/var/log/dtma/audit.log", "writable": False, "error": "No space left on device"}
    audit_full["health"]["agent"].update(status="degraded", audit_log=audit_log)
    hosts = by_name(fleet_health([{"name": "d", "result": docker_down}, {"name": "a", "result": audit_full}]))
    assert hosts["d"]["status"] == "down"
    assert [p["text"] for p in hosts["d"]["problems"]] == [
        "agent API: HTTP 503: the agent answers but reports itself degraded",
        "Docker: the agent cannot reach the Docker engine"]
    assert hosts["a"]["status"] == "degraded"
    assert hosts["a"]["reason"] == ("the agent reports itself degraded: audit log /var/log/dtma/audit.log not writable "
                                    "(No space left on device)")


@pytest.mark.parametrize("entries", [{"name": "x"}, [{"address": "no name"}], ["text"]])
def test_bad_input_is_a_clear_filter_error(entries):
    with pytest.raises(AnsibleFilterError, match="fleet_health"):
        fleet_health(entries)


def test_an_empty_fleet():
    report = fleet_health([])
    assert report["hosts"] == [] and report["summary"]["total"] == 0 and report["summary"]["api_ms_p50"] is None
