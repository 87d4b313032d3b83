"""Sends the attacks for real and measures their impact from outside the agent (see attacks.py, conftest.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import requests

from confinement_env import DOCKER, ConfinementDroplet, RESULTS, restore_canaries, sh, start_victim, victim_ok

SCRATCH = "/var/lib/dtma/scratch"
# classes whose attacks each get the full check at once (they hit the agent, the scratch dir or take long)
ONE_BY_ONE = {"planted", "signal_agent", "resources", "escape_pgroup", "sandbox"}
BATCH = 25


def fill(text: str, d: ConfinementDroplet, a: dict) -> str:
    tid = next((t for t in d.agent_tids if t != d.agent_pid), d.agent_pid)
    for key, value in {"@M@": a["marker"], "@S@": a["sleep"], "@PID@": d.agent_pid, "@TID@": tid,
                       "@PORT@": d.port, "@MCP@": d.mcp, "@VICTIM@": d.victim, "@DROPLET@": d.name,
                       "@HOSTCANARY@": d.host_canary, "@SCR@": SCRATCH}.items():
        text = text.replace(key, str(value))
    return text


def _fill_obj(obj, d, a):
    return json.loads(fill(json.dumps(obj, ensure_ascii=False), d, a))


def boot_id(d: ConfinementDroplet) -> str | None:
    try:
        r = requests.get(d.url + "/health", timeout=3)
        return r.json().get("boot_id") if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None


def api_body(a: dict, d: ConfinementDroplet) -> dict:
    m = a["marker"]
    override = _fill_obj(a["override"], d, a)
    if a["route"].startswith("/tools"):
        return {"dockerImageUrl": "local/busybox:latest", "instanceNameOnToolbox": m, "accountToolInstanceId": m,
                "baseConfigOverrideJson": override}
    return {"groupId": m, "servers": [{"instanceNameOnToolbox": m, "dockerImageUrl": "local/busybox:latest",
                                       "accountToolInstanceId": m, "mcpTransportType": "stdio",
                                       "baseConfigOverrideJson": override}]}


def send(d: ConfinementDroplet, a: dict) -> dict:
    res = {"id": a["id"], "cls": a["cls"], "impacts": [], "responses": []}
    t0 = time.monotonic()
    if a["route"]:
        res["request"] = f"POST {a['route']} " + json.dumps(api_body(a, d), ensure_ascii=False)
        code, text = d.request("POST", a["route"], json=api_body(a, d), timeout=90)
        res["responses"].append({"status": code, "text": text[:6000]})
        res["verdict"] = "accepted" if code in (200, 201) else ("refused" if 400 <= code < 500 else f"error {code}")
    else:
        res["request"] = fill(a["command"], d, a)
        for part in res["request"].split("\n#NEXT\n"):
            code, body = d.execute(part, a["timeout_ms"])
            text = json.dumps(body) if isinstance(body, dict) else str(body)
            entry = {"status": code, "text": text[:6000]}
            if isinstance(body, dict):
                entry.update({k: body.get(k) for k in ("exit_code", "rule", "reason", "timed_out")})
                entry["stdout"] = (body.get("stdout") or "")[:1500]
                entry["stderr"] = (body.get("stderr") or "")[:1500]
            res["responses"].append(entry)
        last = res["responses"][-1]["status"]
        res["verdict"] = {200: "executed", 403: "blocked"}.get(last, f"error {last}")
    res["duration_s"] = round(time.monotonic() - t0, 2)
    # the agent must be the same process and answer
    now = boot_id(d)
    if now != d.boot:
        res["impacts"].append(f"agent disturbed: /health boot_id {d.boot} -> {now}")
        d.recover_agent()
        d.refresh_agent()
        d.boot = boot_id(d)
    # secrets must not come back
    full = "\n".join(r["text"] for r in res["responses"])
    if "FILTER-LET-THROUGH" in "\n".join(r.get("stdout") or "" for r in res["responses"]):
        res["impacts"].append("the filtered Docker API let a forbidden request through")
    for label, value in d.canaries.items():
        if value and value in full:
            res["impacts"].append(f"leaked {label}")
    return res


_GRANTS = (
    ("Privileged", lambda h: bool(h.get("Privileged"))),
    ("CapAdd", lambda h: bool(h.get("CapAdd"))),
    ("Devices", lambda h: bool(h.get("Devices"))),
    ("Binds", lambda h: any(str(b).startswith("/") for b in h.get("Binds") or [])),
    ("Mounts bind", lambda h: any(str(m.get("Type")).lower() == "bind" for m in h.get("Mounts") or [])),
    ("Mounts driver opts", lambda h: any(((m.get("VolumeOptions") or {}).get("DriverConfig") or {}).get("Options")
                                         for m in h.get("Mounts") or [])),
    ("VolumesFrom", lambda h: bool(h.get("VolumesFrom"))),
    ("namespace", lambda h: any(str(h.get(k) or "").lower() == "host" or str(h.get(k) or "").lower().startswith(
        "container:") for k in ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "NetworkMode"))),
    ("SecurityOpt", lambda h: any("unconfined" in str(o) or "disable" in str(o) for o in h.get("SecurityOpt") or [])),
    ("CgroupParent", lambda h: bool(h.get("CgroupParent"))),
    ("Runtime", lambda h: h.get("Runtime") not in (None, "", "runc")),
    ("LogConfig", lambda h: (h.get("LogConfig") or {}).get("Type") not in (None, "", "json-file", "local", "none")),
    ("Sysctls", lambda h: bool(h.get("Sysctls"))),
    ("MaskedPaths", lambda h: h.get("MaskedPaths") == [] or h.get("ReadonlyPaths") == []),
)


def grants(inspect: dict) -> list[str]:
    host = inspect.get("HostConfig") or {}
    found = [name for name, test in _GRANTS if test(host)]
    for m in inspect.get("Mounts") or []:
        if m.get("Type") == "bind" and "Mounts bind" not in found and "Binds" not in found:
            found.append(f"bind {m.get('Source')}")
        if m.get("Type") == "volume" and m.get("Name"):
            vol = sh([DOCKER, "volume", "inspect", m["Name"]], check=False)
            if vol.returncode == 0 and (json.loads(vol.stdout)[0].get("Options") or {}).get("device"):
                found.append(f"volume {m['Name']} with device option")
    return found


def check_batch(d: ConfinementDroplet, batch: list[dict], attacks: dict) -> None:
    """The checks from outside: files, processes, containers/volumes/networks/images, canaries, the victim."""
    by_id = {r["id"]: r for r in batch}
    pat = re.compile(rf"pwned-{d.session}-(\d+)")

    def hit(text: str, what: str, allow_other: bool = False):
        for m in pat.finditer(text):
            n = int(m.group(1))
            if n in by_id:
                by_id[n]["impacts"].append(what)
            elif allow_other:
                RESULTS.setdefault("stray", []).append(what)

    # files on the droplet's real filesystem (the agent's PrivateTmp included), then the Docker host
    r = d.root(f"find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -name 'pwned-{d.session}-*' -print 2>/dev/null;"
               f" find /run /dev/shm -name 'pwned-{d.session}-*' 2>/dev/null; echo HOSTNAME=$(hostname);"
               f" ip -o link show lo | grep -q LOWER_UP || {{ ip link set lo up; echo LO-WAS-DOWN; }};"
               f" ip -o addr show lo | grep -q 10.250.0.1 && {{ ip addr del 10.250.0.1/32 dev lo; echo LO-ADDR-ADDED; }};"
               f" true", timeout=120)
    for flag, what in (("LO-WAS-DOWN", "the droplet's loopback was set down"),
                       ("LO-ADDR-ADDED", "an address was added to the droplet's loopback")):
        if flag in r.stdout:
            for res in [x for x in batch if "ip " in x["request"]] or batch:
                res["impacts"].append(what)
    host = re.search(r"HOSTNAME=(\S*)", r.stdout)
    if host and host.group(1) != "droplet-1":
        for res in [x for x in batch if "hostname" in x["request"]] or batch:
            res["impacts"].append(f"the droplet's hostname changed to {host.group(1)}")
        d.root("hostname droplet-1")
    found = [p for p in r.stdout.splitlines() if p.startswith("/")]
    for path in found:
        in_scratch = path.startswith(SCRATCH + "/")
        m = pat.search(path)
        if m and int(m.group(1)) in by_id and (not in_scratch or by_id[int(m.group(1))]["cls"] == "resources"):
            hit(path, f"file on the droplet: {path}")
    if found:
        d.root("rm -rf " + " ".join(f"'{p}'" for p in found))
    for p in Path("/tmp").glob(f"pwned-{d.session}-*"):
        hit(p.name, f"file on the Docker host: {p}")
        subprocess.run(["rm", "-rf", str(p)], check=False)
    # processes left running (the host sees the droplet's processes too)
    ps = sh(["pgrep", "-af", "sleep 987"], check=False).stdout
    for line in ps.splitlines():
        pid, _sep, cmd = line.partition(" ")
        m = re.search(r"sleep 987(\d+)\b", cmd)
        if m and int(m.group(1)) in by_id:
            if by_id[int(m.group(1))]["cls"] != "api_override":  # there it is the tool container's own process
                by_id[int(m.group(1))]["impacts"].append(f"process still running: {cmd.strip()}")
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    # containers, volumes, networks, images carrying the marker
    ids = sh([DOCKER, "ps", "-aq", "--no-trunc"], check=False).stdout.split()
    if ids:
        out = sh([DOCKER, "inspect", *ids], check=False).stdout
        for c in json.loads(out or "[]"):
            blob = json.dumps(c)
            if f"pwned-{d.session}-" not in blob and "sleep 987" not in blob:
                continue
            m = pat.search(blob) or re.search(r"987(\d{3})", blob)
            n = int(m.group(1)) if m else None
            if n not in by_id:
                continue
            a = by_id[n]
            g = grants(c)
            if a["cls"] == "api_override":
                if g:
                    a["impacts"].append(f"container {c['Name']} created with host access: {', '.join(g)}")
            else:
                a["impacts"].append(f"container {c['Name']} created through the real Docker API"
                                    + (f" with host access: {', '.join(g)}" if g else ""))
            sh([DOCKER, "rm", "-f", c["Id"]], check=False)
    for kind in ("volume", "network"):
        names = sh([DOCKER, kind, "ls", "-q", "--filter", f"name=pwned-{d.session}-"], check=False).stdout.split()
        for name in names:
            m = pat.search(name)
            if m and int(m.group(1)) in by_id and by_id[int(m.group(1))]["cls"] != "api_override":
                by_id[int(m.group(1))]["impacts"].append(f"{kind} {name} created through the real Docker API")
            sh([DOCKER, kind, "rm", name], check=False)
    imgs = sh([DOCKER, "images", "--format", "{{.Repository}}:{{.Tag}}"], check=False).stdout.split()
    for img in imgs:
        if f"pwned-{d.session}-" in img:
            hit(img, f"image {img} created through the real Docker API")
            sh([DOCKER, "rmi", "-f", img], check=False)
    # API-created groups and tools are removed through the agent (then anything left by name)
    for res in batch:
        if res["cls"] == "api_override" and res["verdict"] == "accepted" and "validate" not in res["request"][:20]:
            marker = attacks[res["id"]]["marker"]
            d.request("DELETE", f"/mcp/groups/{marker}?forceRemove=true" if "/mcp/" in res["request"][:20]
                      else f"/tools/{marker}", timeout=60)
    # canary files intact; the victim container untouched
    for path in restore_canaries(d):
        culprits = [r for r in batch if os.path.dirname(path) in r["request"] or "canary" in r["request"]]
        for r in culprits or batch:
            r["impacts"].append(f"canary file changed or removed: {path}")
    if not victim_ok(d):
        culprits = [r for r in batch if d.victim in r["request"]]
        for r in culprits or batch:
            r["impacts"].append(f"container {d.victim} (not managed by the agent) stopped/paused/removed/renamed")
        sh([DOCKER, "rm", "-f", d.victim], check=False)
        start_victim(d)
    # the agent as a service: same process, no restarts
    pid, restarts = d.agent_state()
    if (pid, restarts) != (d.agent_pid, d.restarts):
        culprits = [r for r in batch if any("agent disturbed" in i for i in r["impacts"])]
        if not culprits:
            for r in batch:
                r["impacts"].append(f"agent MainPID/NRestarts changed during the batch: {d.agent_pid}/{d.restarts} -> "
                                    f"{pid}/{restarts}")
        d.refresh_agent()
    d.root(f"find {SCRATCH} -mindepth 1 -delete 2>/dev/null; true")


def run_all(d: ConfinementDroplet, attacks: list[dict]) -> list[dict]:
    by_id = {a["id"]: a for a in attacks}
    d.boot = boot_id(d)
    results: list[dict] = []
    batch: list[dict] = []
    for a in attacks:
        res = send(d, a)
        batch.append(res)
        alone = a["cls"] in ONE_BY_ONE or "@VICTIM@" in (a["command"] or "") or (
            a["cls"] == "write_outside" and "canary" in (a["command"] or ""))
        if alone or len(batch) >= BATCH or a is attacks[-1]:
            check_batch(d, batch, by_id)
            results.extend(batch)
            batch = []
    if batch:
        check_batch(d, batch, by_id)
        results.extend(batch)
    # a validate route that says yes to an override its real route turned into host access is wrong too
    real = {(by_id[r["id"]]["route"], by_id[r["id"]]["oi"]): r for r in results if by_id[r["id"]]["route"]}
    for r in results:
        a = by_id[r["id"]]
        if a["route"] and a["route"].endswith("/validate") and r["verdict"] == "accepted":
            twin = real.get((a["route"].rsplit("/", 1)[0], a["oi"]))
            if twin and twin["impacts"]:
                r["impacts"].append(f"validate accepted an override that {twin['request'][:22]!r} turned into host "
                                    f"access (#{twin['id']})")
    for r in results:
        r["impacts"] = sorted(set(r["impacts"]))
    return results
