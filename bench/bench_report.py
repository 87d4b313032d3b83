"""Benchmark of playbooks/health_report.yml on a generated fleet: the playbook's wall time, its render step and the
size of the HTML file it writes.

A 200-host fleet against loopback agents: 200 agent processes do not fit on this 2-core machine next to Ansible's
forks, so the hosts share a handful of real `dtma-agent` processes (--agents, 10 by default): each inventory host is
a distinct name whose `dtma_url` points at one of them, round robin, and a few (--down) point at a port where nothing
listens (down hosts, with the module's retries). Every agent talks to the real Docker engine, where the run deploys
one MCP group (a real MCP server over streamable HTTP, which each host's gather probes, and a stdio server); every
agent shares that engine, so every host reports both servers (and any other managed container on this machine).
Each agent also gets three blocked commands in its audit trail (refused by the policy; nothing runs).

    .venv/bin/python bench/bench_report.py [--hosts 200] [--agents 10] [--forks 20] [--json bench/results/report.json]

Times come from a small callback (bench/callback_plugins/bench_task_times.py): each task from its start to the next
one's. `render` is the two steps on the controller: building the report (the fleet_health filter over every host's
result) and writing it (the template). The report is kept (--report, bench/results/health-report.html) to look at.
Containers are named `dtmabench-p<pid>-…` and removed at the end, also after an error. Traffic goes only to
127.0.0.1 and the local Docker socket.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from dtma_testing import PrivateDocker  # noqa: E402  pylint: disable=wrong-import-position
BIN = Path(sys.executable).parent
PREFIX = f"dtmabench-p{os.getpid()}-"
BLOCKED = ("cat /etc/shadow", "frobnicate --now", "reboot")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, token: str, log_dir: Path, docker_host: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "AGENTOPIA_", "BACKEND_TO_DTMA"))}
        env.update(DTMA_BEARER_TOKEN=token, DTMA_SETTLE_S="1")
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        with open(log_dir / f"agent-{self.port}.log", "wb") as log:
            self.proc = subprocess.Popen([str(BIN / "dtma-agent"), "--host", "127.0.0.1", "--port", str(self.port)],
                                         env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the agent on {self.url} did not answer /health within {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def group_payload(private_engine: bool) -> dict:
    stdio = {"instanceNameOnToolbox": PREFIX + "stdio", "dockerImageUrl": "local/busybox:latest",
             "accountToolInstanceId": "bench", "mcpTransportType": "stdio", "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}}
    if private_engine:  # no network there: two stdio servers, nothing to probe over HTTP
        return {"groupId": PREFIX + "group", "servers": [stdio, {**stdio, "instanceNameOnToolbox": PREFIX + "stdio2"}]}
    http = {"instanceNameOnToolbox": PREFIX + "mcp", "dockerImageUrl": "local/mcp-demo:latest",
            "accountToolInstanceId": "bench", "mcpTransportType": "streamable-http", "mcpEndpointPath": "/mcp",
            "portBindings": {"8080": ""}, "environmentVariables": {"MCP_TRANSPORT": "streamable-http", "MCP_PATH": "/mcp"}}
    return {"groupId": PREFIX + "group", "servers": [http, stdio], "options": {"readyTimeoutSeconds": 30}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--down", type=int, default=4, help="hosts whose agent does not answer")
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--report", type=Path, default=REPO / "bench" / "results" / "health-report.html")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--private-engine", action="store_true",
                        help="the agents use a Docker engine of their own (no other work shows; no MCP probe)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dtmabench-report-"))
    token = secrets.token_hex(24)
    engine = PrivateDocker() if args.private_engine else None
    agents = []
    try:
        if engine:
            engine.start(docker.APIClient(version="auto"))
        agents += [Agent(token, work, engine.docker_host if engine else None) for i in range(args.agents)]
        for agent in agents:
            agent.wait()
        r = agents[0].session.post(agents[0].url + "/mcp/groups", json=group_payload(args.private_engine), timeout=120)
        if r.status_code != 201:
            raise SystemExit(f"the MCP group was not deployed: {r.status_code} {r.text[:500]}")
        for agent in agents:
            for command in BLOCKED:
                agent.session.post(agent.url + "/ssh/execute", json={"command": command}, timeout=30)

        hosts = {}
        for i in range(args.hosts):
            url = f"http://127.0.0.1:{free_port()}" if i < args.down else agents[i % len(agents)].url
            hosts[f"bench-host-{i + 1:03d}"] = {"dtma_url": url, "ansible_connection": "local"}
        inventory = work / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"dtma_hosts": {"hosts": hosts,
                                                            "vars": {"ansible_python_interpreter": sys.executable}}}))
        collections = work / "collections" / "ansible_collections" / "agentopia"
        collections.mkdir(parents=True)
        (collections / "dtma").symlink_to(REPO)
        times_file = work / "times.json"
        args.report.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "ANSIBLE_", "AGENTOPIA_"))}
        env.update(DTMA_BEARER_TOKEN=token, ANSIBLE_COLLECTIONS_PATH=str(work / "collections"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_CALLBACK_PLUGINS=str(REPO / "bench" / "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="bench_task_times", BENCH_TASK_TIMES=str(times_file), HOME=str(work),
                   PATH=f"{BIN}:{os.environ.get('PATH', '')}")
        started = time.monotonic()
        done = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "-f", str(args.forks),
                               str(REPO / "playbooks" / "health_report.yml"), "-e", f"dtma_report_path={args.report}"],
                              env=env, capture_output=True, text=True, timeout=3600, check=False)
        wall = time.monotonic() - started
        if done.returncode != 0:
            print(done.stdout[-4000:], done.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"ansible-playbook failed ({done.returncode})")
        times = {t["name"]: t["seconds"] for t in json.loads(times_file.read_text())}
        summary = [line.strip() for line in done.stdout.splitlines() if "hosts:" in line and "report in" in line]
        build, write = times["Build the report from every host's result"], times["Write the report"]
        size = args.report.stat().st_size
        result = {
            "hosts": args.hosts, "agents": args.agents, "down": args.down, "forks": args.forks,
            "private_engine": args.private_engine, "load_average": os.getloadavg()[0],
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "wall_s": round(wall, 2), "gather_s": times["Ask the agent"],
            "render_s": round(build + write, 3), "build_s": build, "template_s": write,
            "html_bytes": size, "summary": summary[0].strip('"') if summary else None, "tasks": times,
        }
        print(f"{args.hosts} hosts ({args.agents} agents, {args.down} down{', a private engine' if engine else ''}), "
              f"forks {args.forks}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print(f"  playbook wall time   {wall:8.2f} s")
        print(f"  gather (dtma_info)   {times['Ask the agent']:8.2f} s")
        print(f"  render               {build + write:8.3f} s  (build {build:.3f} s + template {write:.3f} s)")
        print(f"  HTML file            {size / 1024:8.1f} KiB  {args.report}")
        for name, seconds in times.items():
            print(f"    {seconds:8.2f} s  {name}")
        if summary:
            print(f"  {summary[0]}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1))
        return 0
    finally:
        try:
            if agents:
                agents[0].session.delete(f"{agents[0].url}/mcp/groups/{PREFIX}group",
                                         params={"forceRemove": "true"}, timeout=60)
        except requests.RequestException:
            pass
        for agent in agents:
            agent.stop()
        if engine:
            engine.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
