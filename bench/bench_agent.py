"""Benchmark of the DTMA agent against the Docker Engine API it drives.

One run starts a real `dtma-agent` on a free 127.0.0.1 port, talks to the real Docker engine, and reports
each agent operation as a ratio to the same operation done directly through `docker.APIClient` in the same
run (absolute timings on these machines drift 30-50 % between runs; ratios measured side by side do not).
Agent and direct repetitions are interleaved (alternating which goes first) to cancel drift; medians and
p90 are reported.

    .venv/bin/python bench/bench_agent.py [--quick] [--json bench/results/agent.json]

Every container it creates is named `dtmabench-p<pid>-...` and removed at the end, also on Ctrl-C, SIGTERM
or error. Exit status: 0 (benchmarks report, they do not gate) unless the agent fails to start (2) or an
operation errors (1). Network traffic goes only to 127.0.0.1 and the local Docker socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import docker.errors
import psutil
import requests

from dtma_agent import __version__ as AGENT_VERSION
from dtma_agent import containers as agent_containers
from dtma_agent import docker_state as ds
from dtma_agent import groups as agent_groups
from dtma_agent.schemas import GroupDeploy
from dtma_agent.settings import Settings

IMAGE = "local/busybox:latest"
SLEEP_CMD = ["sleep", "3600"]
BENCH = "dtmabench"
PREFIX = f"{BENCH}-p{os.getpid()}-"
HOST = "127.0.0.1"

# (default, --quick) repetitions per phase
REPS = {
    "status": (200, 30),
    "status_warmup": (20, 5),
    "lifecycle": (30, 3),
    "group": (6, 1),
    "settle": (3, 1),
    "cold": (5, 2),
    "exec": (100, 15),
}
TARGETS = {"status": 1.5, "tool": 1.1, "group": 1.1, "rss_mb": 60.0, "exec_true": 1.5}


class BenchError(RuntimeError):
    """An operation failed: the run reports it and exits 1."""


class AgentStartError(RuntimeError):
    """The agent did not come up: exit 2."""


# --------------------------------------------------------------------------------------------- helpers

def now() -> float:
    return time.perf_counter()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(values_s: list[float]) -> dict:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 3), "p90_ms": round(pct(ms, 90), 3),
            "min_ms": round(min(ms), 3), "max_ms": round(max(ms), 3)}


def interleaved(n: int, agent_op, direct_op) -> tuple[list[float], list[float]]:
    """Run agent_op(i) and direct_op(i) n times each, alternating which goes first; return their timings (s)."""
    a_times, d_times = [], []
    for i in range(n):
        order = [(agent_op, a_times), (direct_op, d_times)]
        if i % 2:
            order.reverse()
        for op, sink in order:
            sink.append(op(i))
    return a_times, d_times


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


# ------------------------------------------------------------------------------------------ the agent

def agent_command() -> list[str]:
    return [str(Path(sys.executable).with_name("dtma-agent"))]


def agent_env(token: str) -> dict:
    # PYTHONDONTWRITEBYTECODE dropped: an installed agent runs from bytecode pip compiled, and compiling the
    # policy engine at every start costs ~6 MB of RSS that production never pays
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DTMA_", "AGENTOPIA_", "BACKEND_TO_DTMA")) and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
           and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(DTMA_BEARER_TOKEN=token, OFFLINE_MODE="true", NO_PROXY="127.0.0.1,localhost", PYTHONUNBUFFERED="1",
               **SANDBOX_ENV)
    return env


class Agent:
    def __init__(self, log_dir: Path, label: str):
        self.token = secrets.token_hex(24)  # 48 hex characters
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.log_path = log_dir / f"agent-{label}.log"
        self.proc: subprocess.Popen | None = None
        self.spawned_at = 0.0
        self.session = requests.Session()
        self.session.trust_env = False  # never a proxy: loopback only
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def start(self, timeout_s: float = 30.0) -> float:
        """Spawn and wait for the first 200 from /health; returns the seconds that took."""
        log = open(self.log_path, "wb")
        self.spawned_at = now()
        self.proc = subprocess.Popen(agent_command() + ["--host", HOST, "--port", str(self.port)],
                                     env=agent_env(self.token), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        probe = requests.Session()
        probe.trust_env = False
        deadline = self.spawned_at + timeout_s
        try:
            while now() < deadline:
                if self.proc.poll() is not None:
                    raise AgentStartError(f"dtma-agent exited with {self.proc.returncode}: {self.log_tail()}")
                try:
                    if probe.get(f"{self.base}/health", timeout=2).status_code == 200:
                        return now() - self.spawned_at
                except requests.ConnectionError:
                    pass
                time.sleep(0.005)
        finally:
            probe.close()
        raise AgentStartError(f"dtma-agent gave no 200 from /health within {timeout_s:.0f} s: {self.log_tail()}")

    def log_tail(self, n: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        self.session.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kw) -> dict:
        resp = self.session.request(method, self.base + path, timeout=120, **kw)
        if resp.status_code not in expect:
            raise BenchError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
        return resp.json()


# ----------------------------------------------------------------------------------------- the phases

SANDBOX_ENV: dict = {}  # the launcher's socket and runtime dir, for every agent this run starts


class Launcher:
    """The real root launcher of the exec sandbox (commands run as dtma-exec, which scripts/setup.sh creates)."""

    def __init__(self, log_dir: Path):
        self.socket = log_dir / "sandbox.sock"
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="dtmabench-run-"))
        self.runtime_dir.chmod(0o755)
        self.proc = subprocess.Popen(agent_command() + ["sandbox-launcher", "--socket", str(self.socket),
                                                        "--docker-socket-dir", str(self.runtime_dir)],
                                     stdin=subprocess.DEVNULL, stdout=open(log_dir / "launcher.log", "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = now() + 10
        while not self.socket.exists():
            if now() > deadline or self.proc.poll() is not None:
                raise AgentStartError(f"the sandbox launcher did not start; see {log_dir / 'launcher.log'}")
            time.sleep(0.05)
        SANDBOX_ENV.update(DTMA_SANDBOX_SOCKET=str(self.socket), DTMA_RUNTIME_DIR=str(self.runtime_dir))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Bench:
    def __init__(self, args):
        self.quick = args.quick
        self.api = docker.APIClient(version="auto", timeout=120, max_pool_size=32)
        self.rows: list[dict] = []
        self.info: dict = {}
        self.agent: Agent | None = None
        self.log_dir = Path(tempfile.mkdtemp(prefix="dtmabench-"))
        self.launcher: Launcher | None = None

    def reps(self, key: str) -> int:
        return REPS[key][1 if self.quick else 0]

    def row(self, op: str, agent_s: list[float] | None, direct_s: list[float] | None, target: float | None,
            note: str = "", unit: str = "ms", value: float | None = None) -> dict:
        r = {"operation": op, "note": note, "target": target}
        if agent_s is not None:
            r["agent"] = summary(agent_s)
        if direct_s is not None:
            r["direct"] = summary(direct_s)
        if agent_s is not None and direct_s is not None:
            r["ratio"] = round(r["agent"]["median_ms"] / r["direct"]["median_ms"], 3)
            r["ratio_p90"] = round(r["agent"]["p90_ms"] / r["direct"]["p90_ms"], 3)
            if len(agent_s) == len(direct_s):  # paired (interleaved) repetitions: the agent's own cost
                r["overhead_ms"] = round(statistics.median(a - d for a, d in zip(agent_s, direct_s)) * 1000, 3)
            r["pass"] = None if target is None else r["ratio"] <= target
        if value is not None:
            r["value"], r["unit"] = round(value, 2), unit
            r["pass"] = None if target is None else value <= target
        self.rows.append(r)
        print("  " + format_row(r), flush=True)
        return r

    # -- setup / cleanup

    def check_engine(self) -> None:
        self.api.ping()
        try:
            self.api.inspect_image(IMAGE)
        except docker.errors.ImageNotFound:
            raise AgentStartError(f"{IMAGE} is missing; run `bash scripts/setup.sh` first") from None
        ver = self.api.version()
        self.info.update(docker_version=ver.get("Version"), docker_api=ver.get("ApiVersion"),
                         agent_version=AGENT_VERSION, python=platform.python_version(), cpus=os.cpu_count(),
                         quick=self.quick, prefix=PREFIX)

    def purge_stale(self) -> None:
        """Containers left by an earlier run that was SIGKILLed (its pid is gone)."""
        for c in self.api.containers(all=True, filters={"name": f"{BENCH}-p"}):
            name = (c.get("Names") or ["/"])[0].lstrip("/")
            pid = name[len(f"{BENCH}-p"):].split("-", 1)[0]
            if name.startswith(f"{BENCH}-p") and pid.isdigit() and not psutil.pid_exists(int(pid)):
                self._force_remove(c["Id"])

    def _force_remove(self, cid: str) -> None:
        try:
            self.api.remove_container(cid, force=True, v=True)
        except docker.errors.NotFound:
            pass

    def cleanup(self) -> int:
        removed = 0
        try:
            mine = [c for c in self.api.containers(all=True, filters={"name": PREFIX})
                    if (c.get("Names") or ["/"])[0].lstrip("/").startswith(PREFIX)]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda c: self._force_remove(c["Id"]), mine))
            removed = len(mine)
            for net in self.api.networks(names=[f"agentopia-mcp-{PREFIX}"]):
                if net.get("Name", "").startswith(f"agentopia-mcp-{PREFIX}"):
                    self.api.remove_network(net["Id"])
        except Exception as exc:  # cleanup must not hide the original error
            print(f"warning: cleanup incomplete: {exc}", file=sys.stderr)
        return removed

    def managed_count(self) -> int:
        return len(self.api.containers(all=True, filters={"label": [f"{ds.MANAGED_BY}={ds.MANAGED_VALUE}"]}))

    # -- phases

    def cold_start(self) -> None:
        n = self.reps("cold")
        times = []
        for i in range(n):
            agent = Agent(self.log_dir, f"cold{i}")
            try:
                times.append(agent.start())
            finally:
                agent.stop()
        self.row("cold start: spawn -> first 200 /health", times, None, None,
                 note=f"median of {n} spawns; no direct counterpart")

    def start_agent(self) -> None:
        self.agent = Agent(self.log_dir, "main")
        self.agent.start()
        self.agent.call("GET", "/status")  # first authenticated call: lazy imports, thread pool
        time.sleep(1.0)
        self.info["agent_pid"] = self.agent.proc.pid
        self.row("idle RSS after startup", None, None, TARGETS["rss_mb"], unit="MB",
                 value=rss_mb(self.agent.proc.pid), note=self.rss_note())

    def status(self, path: str = "/status", target: float | None = TARGETS["status"], label: str = "") -> None:
        agent, api = self.agent, self.api
        flt = {"label": [f"{ds.MANAGED_BY}={ds.MANAGED_VALUE}"]}
        n_managed = self.managed_count()

        def via_agent(_index):
            t = now()
            resp = agent.session.get(agent.base + path, timeout=30)
            resp.json()
            dt = now() - t
            if resp.status_code != 200:
                raise BenchError(f"GET {path} -> {resp.status_code}: {resp.text[:300]}")
            return dt

        def direct(_index):
            t = now()
            api.containers(all=True, filters=flt)
            return now() - t

        interleaved(self.reps("status_warmup"), via_agent, direct)
        a, d = interleaved(self.reps("status"), via_agent, direct)
        self.row(f"GET {path} ({n_managed} managed){label}", a, d, target,
                 note=f"{n_managed} managed containers on the engine; floor = one filtered list call")

    def make_managed(self, count: int) -> list[str]:
        def one(i):
            name = f"{PREFIX}status-{i}"
            cfg = {"Image": IMAGE, "Cmd": SLEEP_CMD, "HostConfig": {"Init": True},
                   "Labels": {ds.MANAGED_BY: ds.MANAGED_VALUE, ds.KIND: ds.KIND_TOOL, ds.INSTANCE: name}}
            cid = self.api.create_container_from_config(cfg, name=name)["Id"]
            self.api.start(cid)
            return cid

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, range(count)))

    def tool_lifecycle(self) -> None:
        agent, api = self.agent, self.api
        n = self.reps("lifecycle")
        override = {"Cmd": SLEEP_CMD}
        ids: dict[str, str] = {}

        def a_name(i):
            return f"{PREFIX}tool-a{i}"

        def d_name(i):
            return f"{PREFIX}tool-d{i}"

        def direct_config(name):
            # exactly what the agent creates (same builder, labels and hash), so both do the same work
            labels = {ds.MANAGED_BY: ds.MANAGED_VALUE, ds.KIND: ds.KIND_TOOL, ds.INSTANCE: name, ds.ACCOUNT_TOOL: "bench"}
            return agent_containers.build_config(IMAGE, labels, override=override)

        def timed(fn):
            t = now()
            fn()
            return now() - t

        def a_deploy(i):
            # settleSeconds 0: the agent still checks the container runs; the window itself is timed in settle()
            return timed(lambda: agent.call("POST", "/tools", expect=(201,), json={
                "dockerImageUrl": IMAGE, "instanceNameOnToolbox": a_name(i), "accountToolInstanceId": "bench",
                "baseConfigOverrideJson": override, "settleSeconds": 0}))

        def d_deploy(i):
            cfg = direct_config(d_name(i))  # built outside the timing: the floor is Docker's work

            def go():
                ids[d_name(i)] = api.create_container_from_config(cfg, name=d_name(i))["Id"]
                api.start(ids[d_name(i)])
            return timed(go)

        def a_action(action):
            return lambda i: timed(lambda: agent.call("POST", f"/tools/{a_name(i)}/{action}?timeout=10"))

        def d_stop(i):
            return timed(lambda: api.stop(ids[d_name(i)], timeout=10))

        def d_start(i):
            return timed(lambda: api.start(ids[d_name(i)]))

        def a_delete(i):
            return timed(lambda: agent.call("DELETE", f"/tools/{a_name(i)}?timeout=10"))

        def d_delete(i):
            def go():
                api.stop(ids[d_name(i)], timeout=10)
                api.remove_container(ids[d_name(i)], force=True, v=True)
            return timed(go)

        # repetition 0 is a warm-up, not recorded; each repetition uses its own names
        results = {op: ([], []) for op in ("deploy", "stop", "start", "delete")}
        plan = [("deploy", a_deploy, d_deploy), ("stop", a_action("stop"), d_stop),
                ("start", a_action("start"), d_start), ("delete", a_delete, d_delete)]
        for rep in range(n + 1):
            for op, a_op, d_op in plan:
                if rep % 2 == 0:
                    a_t = a_op(rep)
                    d_t = d_op(rep)
                else:
                    d_t = d_op(rep)
                    a_t = a_op(rep)
                if rep:
                    results[op][0].append(a_t)
                    results[op][1].append(d_t)
        self._lifecycle_rows(results)

    def _lifecycle_rows(self, results) -> None:
        floors = {"deploy": "POST /tools vs create_container_from_config + start",
                  "stop": "POST /tools/{name}/stop?timeout=10 vs api.stop",
                  "start": "POST /tools/{name}/start vs api.start",
                  "delete": "DELETE /tools/{name}?timeout=10 vs api.stop + remove_container"}
        for op, (a, d) in results.items():
            self.row(f"tool {op}", a, d, TARGETS["tool"], note=floors[op])

    def settle(self) -> None:
        """The settle window, reported apart from the ratios: a tool deploy with the agent's default window, and
        what it adds beyond the window itself."""
        n, agent = self.reps("settle"), self.agent
        window = Settings.settle_s  # the bench's agent runs with no DTMA_SETTLE_S: the default
        took = []
        for i in range(n):
            name = f"{PREFIX}settle{i}"
            t = now()
            agent.call("POST", "/tools", expect=(201,), json={
                "dockerImageUrl": IMAGE, "instanceNameOnToolbox": name, "accountToolInstanceId": "bench",
                "baseConfigOverrideJson": {"Cmd": SLEEP_CMD}})
            took.append(now() - t)
            agent.call("DELETE", f"/tools/{name}?timeout=0")
        self.row("tool deploy with the default settle window", took, None, None,
                 note=f"not a ratio: {window:g} s of it is the window, waiting by design (the agent polls the "
                      "container's state through it)")

    def group(self) -> None:
        agent, api = self.agent, self.api
        n = self.reps("group")
        size = 10

        def payload(gid):
            return {"groupId": gid, "options": {"maxConcurrentDeployments": size, "settleSeconds": 0},
                    "servers": [{"instanceNameOnToolbox": f"{gid}-s{j}", "dockerImageUrl": IMAGE,
                                 "accountToolInstanceId": f"bench-{j}", "baseConfigOverrideJson": {"Cmd": SLEEP_CMD}}
                                for j in range(size)]}

        def direct_configs(gid):
            group = GroupDeploy.model_validate(payload(gid))
            return [(s.instanceNameOnToolbox, agent_groups.desired_config(group, s)) for s in group.servers]

        deploy_a, deploy_d, delete_a, delete_d = [], [], [], []
        for rep in range(n + 1):  # rep 0 is a warm-up
            ga, gd = f"{PREFIX}ga{rep}", f"{PREFIX}gd{rep}"
            cfgs = direct_configs(gd)
            direct_ids: list[str] = []

            def a_deploy():
                t = now()
                body = agent.call("POST", "/mcp/groups", expect=(201,), json=payload(ga))
                dt = now() - t
                if len(body["data"]["servers"]) != size:
                    raise BenchError(f"group deploy answered {len(body['data']['servers'])} servers")
                return dt

            def d_deploy():
                def one(item):
                    name, cfg = item
                    cid = api.create_container_from_config(cfg, name=name)["Id"]
                    api.start(cid)
                    return cid
                t = now()
                with ThreadPoolExecutor(size) as pool:
                    direct_ids.extend(pool.map(one, cfgs))
                return now() - t

            def a_delete():
                t = now()
                agent.call("DELETE", f"/mcp/groups/{ga}?forceRemove=true")
                return now() - t

            def d_delete():
                t = now()
                with ThreadPoolExecutor(size) as pool:
                    list(pool.map(lambda cid: api.remove_container(cid, force=True, v=True), direct_ids))
                return now() - t

            first, second = ((a_deploy, d_deploy), (d_deploy, a_deploy))[rep % 2]
            r1, r2 = first(), second()
            ra, rd = (r1, r2) if rep % 2 == 0 else (r2, r1)
            first, second = ((a_delete, d_delete), (d_delete, a_delete))[rep % 2]
            s1, s2 = first(), second()
            sa, sd = (s1, s2) if rep % 2 == 0 else (s2, s1)
            if rep:
                deploy_a.append(ra), deploy_d.append(rd), delete_a.append(sa), delete_d.append(sd)
        self.row(f"MCP group deploy ({size} servers)", deploy_a, deploy_d, TARGETS["group"],
                 note="POST /mcp/groups (maxConcurrentDeployments 10, settleSeconds 0) vs 10 x create+start, 10 threads")
        self.row(f"MCP group delete ({size} servers, force)", delete_a, delete_d, TARGETS["group"],
                 note="DELETE /mcp/groups/{id}?forceRemove=true vs 10 x remove(force), 10 threads")

    def run(self) -> None:
        self.check_engine()
        self.purge_stale()
        print(f"dtma-agent {AGENT_VERSION} vs Docker {self.info['docker_version']} (API {self.info['docker_api']}), "
              f"{os.cpu_count()} CPUs, {'quick' if self.quick else 'full'} run", flush=True)
        self.launcher = Launcher(self.log_dir)
        self.cold_start()
        self.start_agent()
        self.status()
        # reference, no target: an authenticated route that does no Docker call, against the same floor.
        # It is the price of one HTTP hop into the agent; /status pays it plus the list call itself.
        self.status("/mcp/templates", None, " [HTTP hop]")
        ids = self.make_managed(20)
        try:
            self.status()
        finally:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(self._force_remove, ids))
        self.tool_lifecycle()
        self.settle()
        self.group()
        self.exec_commands()
        time.sleep(1.0)
        self.row("idle RSS after the run", None, None, TARGETS["rss_mb"], unit="MB", value=rss_mb(self.agent.proc.pid),
                 note=self.rss_note())

    def exec_commands(self) -> None:
        """POST /ssh/execute (policy check, then the command confined by the sandbox launcher, output captured) vs
        the floor: one bare HTTP round trip to the agent plus the same confinement launching the same argv directly
        from this process. A second row gives the confinement's own cost against a bare spawn."""
        from dtma_agent.executor import Executor  # pylint: disable=import-outside-toplevel
        # as the agent does it: a filtered Docker API endpoint per command, then the launcher
        confined = Executor(str(self.launcher.socket), docker_upstream="/var/run/docker.sock",
                            runtime_dir=str(self.launcher.runtime_dir))

        def launch(argv):
            result = asyncio.run(confined.run(argv, 10))
            if result.exit_code != 0:
                raise BenchError(f"sandboxed {argv} failed: {result}")

        def bare_spawn(_index):
            t0 = now()
            subprocess.run(["true"], capture_output=True, check=True)
            return now() - t0

        def sandbox_spawn(_index):
            t0 = now()
            launch(["true"])
            return now() - t0

        agent_s, direct_s = interleaved(self.reps("exec"), sandbox_spawn, bare_spawn)
        self.row("sandbox: launch `true` confined (bwrap via the launcher)", agent_s, direct_s, None,
                 note="floor: subprocess.run(['true']) in the benchmark process (the confinement's own cost)")
        for command, target in (("true", TARGETS["exec_true"]), ("docker ps -a", None)):
            argv = command.split()

            def via_agent(_index, argv=argv):
                t0 = now()
                body = self.agent.call("POST", "/ssh/execute", json={"command": " ".join(argv)})
                elapsed = now() - t0
                if body.get("exit_code") != 0:
                    raise BenchError(f"exec {argv} failed: {body}")
                return elapsed

            def floor(_index, argv=argv):
                t0 = now()
                self.agent.call("GET", "/mcp/templates")  # a bare authenticated round trip, no Docker call
                launch(argv)
                return now() - t0

            agent_s, direct_s = interleaved(self.reps("exec"), via_agent, floor)
            self.row(f"POST /ssh/execute `{command}`", agent_s, direct_s, target,
                     note="floor: one bare HTTP round trip + the same sandbox (and Docker filter) launching the same argv directly")

    def rss_note(self) -> str:
        """Name the big optional libraries mapped into the agent (the docker SDK imports paramiko when installed)."""
        try:
            maps = Path(f"/proc/{self.agent.proc.pid}/maps").read_text()
        except OSError:
            return ""
        notes = []
        if "/cryptography/" in maps:
            notes.append("cryptography is mapped: the docker SDK imports its optional SSH transport (paramiko) "
                         "whenever paramiko is installed, about +15 MB")
        notes += [f"{lib} loaded" for lib in ("uvloop", "httptools") if f"/{lib}/" in maps]
        return "; ".join(notes)


# ------------------------------------------------------------------------------------------ reporting

def fmt_ms(s: dict | None) -> str:
    return f"{s['median_ms']:.1f} (p90 {s['p90_ms']:.1f})" if s else "-"


def format_row(r: dict) -> str:
    delta = "-"
    if "value" in r:
        agent, direct, ratio = f"{r['value']:.1f} {r['unit']}", "-", "-"
    else:
        agent, direct = fmt_ms(r.get("agent")), fmt_ms(r.get("direct"))
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
    delta = f"{r['overhead_ms']:+.1f}" if "overhead_ms" in r else "-"
    target = "-" if r["target"] is None else (f"<= {r['target']:g} MB" if "value" in r else f"<= {r['target']:g}x")
    verdict = {True: "pass", False: "FAIL", None: "info"}[r.get("pass")]
    return f"{r['operation']:<44} {agent:>22} {direct:>22} {ratio:>7} {delta:>8} {target:>10} {verdict:>5}"


def print_table(rows: list[dict]) -> None:
    print()
    print(f"{'operation':<44} {'agent ms (p90)':>22} {'direct ms (p90)':>22} {'ratio':>7} {'+ms':>8} {'target':>10} {'':>5}")
    print("-" * 125)
    for r in rows:
        print(format_row(r))
    print("\nratio = agent median / direct median; +ms = median of paired (agent - direct) differences")
    for r in rows:
        if r.get("note"):
            print(f"  {r['operation']}: {r['note']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (CI smoke, < 60 s)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    bench = Bench(args)
    started = now()
    code = 0
    try:
        bench.run()
    except AgentStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        code = 130
    except Exception as exc:  # an operation failed: report it, still clean up
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if bench.agent:
            bench.agent.stop()
        if bench.launcher:
            bench.launcher.stop()
        removed = bench.cleanup()
        bench.info.update(elapsed_s=round(now() - started, 1), leftovers_removed_at_cleanup=removed,
                          agent_log=str(bench.log_dir / "agent-main.log"))
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if bench.rows:
        print_table(bench.rows)
        print(f"\n{len(bench.rows)} rows in {bench.info['elapsed_s']} s; agent log: {bench.info['agent_log']}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"info": bench.info, "results": bench.rows, "exit_code": code}, indent=2) + "\n")
        print(f"wrote {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
