"""Prints the demo's agent answers (JSON on stdin) for a person; exits 1 when they report a failure."""

import json
import sys


def deploy(body: dict) -> bool:
    print("deploy:", "ok" if body.get("success") else "FAILED: " + body.get("message", ""))
    for s in body.get("data", {}).get("servers", []):
        print(f"  {s['name']:<16} {s['outcome']:<10} {s.get('message', '')}")
    return bool(body.get("success"))


def health(body: dict) -> bool:
    print("group health:", body.get("collectiveStatus", body.get("message")))
    for s in body.get("data", {}).get("servers", []):
        p = s["health"].get("probe") or {}
        probe = "ok" if p.get("ok") else p.get("error") or p.get("reason") or "-"
        print(f"  {s['name']:<16} {s['mcp_transport']:<16} container={s['state']:<8} mcp_probe={probe}"
              f" server={p.get('server_name')}/{p.get('server_version')} tools={p.get('tools')} latency={p.get('latency_ms')}ms")
    return body.get("collectiveStatus") == "healthy"


if __name__ == "__main__":
    sys.exit(0 if {"deploy": deploy, "health": health}[sys.argv[1]](json.load(sys.stdin)) else 1)
