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
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from dtma_testing import DockerProxy  # noqa: E402  (the tests' forwarder, to take Docker away from one agent)

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
    "health": (1000, 200),
    "throughput_rounds": (3, 1),
    "outage": (3, 2),
}
THROUGHPUT_S = (2.0, 1.0)  # seconds per throughput round (default, --quick)
THROUGHPUT_THREADS = 8
TARGETS = {"status": 1.5, "tool": 1.1, "group": 1.1, "rss_mb": 60.0, "rss_after_mb": 64.0, "exec_true": 1.5,
           "health": 1.3, "health_throughput": 0.8, "health_age_ms": 2000.0, "outage_ms": 2000.0,
           # the measurement of the predecessor (Node.js DTMA), which is not on this machine
           "cold_ms": 210.0}
BARE_APP = Path(__file__).resolve().parent / "bare_app.py"
# A same-run reference for start-up cost: Node's own http module answering /health. NOT the predecessor (which is
# not on this machine); only what a Node.js process costs to start here.
NODE_STANDIN = """require('http').createServer((req, res) => {
  const body = JSON.stringify({status: 'ok', timestamp: new Date().toISOString()});
  res.writeHead(200, {'content-type': 'application/json', 'content-length': Buffer.byteLength(body)});
  res.end(body);
}).listen(Number(process.argv[2]), process.argv[1]);"""


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


def spawn_until_healthy(argv: list[str], env: dict, log_path: Path, port: int,
                        timeout_s: float = 30.0) -> tuple[subprocess.Popen, float]:
    """Spawn a server and wait for its first 200 from /health; the process and the seconds that took."""
    with open(log_path, "wb") as log:
        spawned_at = now()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = spawned_at + timeout_s
    while now() < deadline:
        if proc.poll() is not None:
            raise AgentStartError(f"{argv[0]} exited with {proc.returncode}: {tail(log_path)}")
        try:
            with RawClient(port, "/health") as probe:
                if probe.get()[0] == 200:
                    return proc, now() - spawned_at
        except OSError:
            pass
        time.sleep(0.005)
    stop_process(proc)
    raise AgentStartError(f"{argv[0]} gave no 200 from /health within {timeout_s:.0f} s: {tail(log_path)}")


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


class RawClient:
    """One keep-alive HTTP/1.1 connection sending a prebuilt GET: the client costs a few microseconds a request, so
    the server, not the client, is what a latency or throughput run measures (requests costs ~0.3 ms itself)."""

    _LENGTH = re.compile(rb"\r\ncontent-length: *([0-9]+)", re.IGNORECASE)

    def __init__(self, port: int, path: str):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
        self.buf = b""

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def get(self) -> tuple[int, bytes]:
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buf:
            self._read()
        head, _sep, self.buf = self.buf.partition(b"\r\n\r\n")
        length = int(self._LENGTH.search(head).group(1))
        while len(self.buf) < length:
            self._read()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(head[9:12]), body

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def throughput(port: int, seconds: float, threads: int = THROUGHPUT_THREADS) -> float:
    """Requests per second of GET /health from `threads` client threads, each on its own keep-alive connection."""
    counts = [0] * threads
    errors: list[str] = []
    start = threading.Barrier(threads + 1, timeout=30)
    stop_at = [0.0]

    def client(index):
        try:
            with RawClient(port, "/health") as c:
                start.wait()
                while now() < stop_at[0]:
                    status, _body = c.get()
                    if status != 200:
                        raise BenchError(f"GET /health -> {status}")
                    counts[index] += 1
        except (OSError, BenchError) as exc:
            errors.append(str(exc))

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    stop_at[0] = now() + seconds
    start.wait()
    for w in workers:
        w.join()
    if errors:
        raise BenchError(f"throughput run on port {port}: {errors[0]}")
    return sum(counts) / seconds


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
        self.session = requests.Session()
        self.session.trust_env = False  # never a proxy: loopback only
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def start(self, timeout_s: float = 30.0, env: dict | None = None) -> float:
        """Spawn and wait for the first 200 from /health; returns the seconds that took."""
        self.proc, seconds = spawn_until_healthy(agent_command() + ["--host", HOST, "--port", str(self.port)],
                                                 {**agent_env(self.token), **(env or {})}, self.log_path, self.port,
                                                 timeout_s)
        return seconds

    def stop(self) -> None:
        self.session.close()
        stop_process(self.proc)

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
            note: str = "", unit: str = "ms", value: float | None = None, at_least: bool = False) -> dict:
        """A timed row (agent vs direct medians, ratio <= target) or a value row (value <= target, or >= with
        at_least)."""
        r = {"operation": op, "note": note, "target": target}
        if at_least:
            r["at_least"] = True
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
            r["pass"] = None if target is None else (value >= target if at_least else value <= target)
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
        node = shutil.which("node")
        times, bare_times, node_times = [], [], []
        for i in range(n):
            agent = Agent(self.log_dir, f"cold{i}")
            try:
                times.append(agent.start())
            finally:
                agent.stop()
            port = free_port()
            proc, seconds = spawn_until_healthy([sys.executable, str(BARE_APP), HOST, str(port)], agent_env(""),
                                                self.log_dir / f"bare{i}.log", port)
            stop_process(proc)
            bare_times.append(seconds)
            if node:
                port = free_port()
                proc, seconds = spawn_until_healthy([node, "-e", NODE_STANDIN, HOST, str(port)], dict(os.environ),
                                                    self.log_dir / f"node{i}.log", port)
                stop_process(proc)
                node_times.append(seconds)
        median_ms = statistics.median(times) * 1000
        self.row("cold start: spawn -> first 200 /health", None, None, TARGETS["cold_ms"], value=median_ms,
                 note=f"median of {n} spawns (all: {', '.join(f'{t * 1000:.0f}' for t in times)} ms); target: the "
                      "issue's figure for the predecessor (Node.js DTMA, 210 ms), which is NOT on this machine")
        bare_ms = statistics.median(bare_times) * 1000
        self.row("  same run: the bare FastAPI app", None, None, None, value=bare_ms,
                 note=f"bench/bare_app.py, uvicorn alone with one route ({n} spawns, interleaved): the floor of this "
                      f"stack; the agent takes {median_ms / bare_ms:.2f}x its start-up")
        if node_times:
            node_ms = statistics.median(node_times) * 1000
            self.row("  same run: Node.js http stand-in", None, None, None, value=node_ms,
                     note=f"NOT the predecessor: `node -e` with Node's http module answering /health ({n} spawns, "
                          f"interleaved with the agent's); the agent takes {median_ms / node_ms:.2f}x its start-up")

    def health(self) -> None:
        """GET /health against a bare FastAPI route served the same way (bench/bare_app.py), one request at a time
        and with 8 client threads; the age of the Docker finding /health reports, sampled under that load."""
        port = free_port()
        bare, _seconds = spawn_until_healthy([sys.executable, str(BARE_APP), HOST, str(port)], agent_env(""),
                                             self.log_dir / "bare.log", port)
        try:
            with RawClient(self.agent.port, "/health") as ours, RawClient(port, "/health") as floor:
                def timed(client):
                    def once(_index):
                        t = now()
                        status, body = client.get()
                        elapsed = now() - t
                        if status != 200:
                            raise BenchError(f"GET /health -> {status}: {body[:300]!r}")
                        return elapsed
                    return once

                interleaved(self.reps("status_warmup"), timed(ours), timed(floor))
                a, d = interleaved(self.reps("health"), timed(ours), timed(floor))
            self.row("GET /health vs a bare FastAPI route", a, d, TARGETS["health"],
                     note="floor: bench/bare_app.py, one async route under the same uvicorn options; one keep-alive "
                          "connection each, sequential, interleaved")
            seconds = THROUGHPUT_S[1 if self.quick else 0]
            ages: list[int] = []
            sampling = threading.Event()

            def sample_ages():
                with RawClient(self.agent.port, "/health") as c:
                    while not sampling.is_set():
                        ages.append(json.loads(c.get()[1])["docker_check"]["age_ms"])
                        time.sleep(0.01)

            ours_rps, floor_rps = [], []
            for i in range(self.reps("throughput_rounds")):
                for target_port, sink in ((self.agent.port, ours_rps), (port, floor_rps))[::(-1 if i % 2 else 1)]:
                    if sink is ours_rps:
                        sampler = threading.Thread(target=sample_ages)
                        sampling.clear()
                        sampler.start()
                    sink.append(throughput(target_port, seconds))
                    if sink is ours_rps:
                        sampling.set()
                        sampler.join()
            ours_med, floor_med = statistics.median(ours_rps), statistics.median(floor_rps)
            self.row(f"GET /health throughput, {THROUGHPUT_THREADS} client threads", None, None,
                     TARGETS["health_throughput"], unit="x", value=ours_med / floor_med, at_least=True,
                     note=f"agent {ours_med:.0f} req/s vs the bare route {floor_med:.0f} req/s (medians of "
                          f"{len(ours_rps)} rounds of {seconds:g} s, alternating); the client runs on the same 2 CPUs")
            self.row("GET /health: age of the Docker finding", None, None, TARGETS["health_age_ms"],
                     value=max(ages), note=f"largest docker_check.age_ms of {len(ages)} samples taken during the "
                                           "agent's throughput rounds")
        finally:
            stop_process(bare)

    def outage(self) -> None:
        """An agent whose Docker socket is a forwarder the run takes away and gives back: how long until /health
        answers 503, and 200 again, at several points of the watch's one-second cycle."""
        proxy = DockerProxy(self.log_dir / "docker-proxy.sock").start()
        agent = Agent(self.log_dir, "outage")
        down_ms, up_ms = [], []

        def until(client, code):
            t = now()
            while client.get()[0] != code:
                if now() - t > 10:
                    raise BenchError(f"/health did not answer {code} within 10 s of the change")
                time.sleep(0.005)
            return (now() - t) * 1000

        try:
            agent.start(env={"DOCKER_HOST": proxy.docker_host})
            with RawClient(agent.port, "/health") as c:
                for i in range(self.reps("outage")):
                    time.sleep(0.37 * i)  # a different point of the watch's cycle each time
                    proxy.stop()
                    down_ms.append(until(c, 503))
                    proxy.start()
                    up_ms.append(until(c, 200))
        finally:
            agent.stop()
            proxy.stop()
        self.row("Docker outage -> /health 503", None, None, TARGETS["outage_ms"], value=max(down_ms),
                 note=f"slowest of {len(down_ms)} outages ({', '.join(f'{v:.0f}' for v in down_ms)} ms): the agent's "
                      "Docker socket is a forwarder this run stops")
        self.row("Docker back -> /health 200", None, None, None, value=max(up_ms),
                 note=f"slowest of {len(up_ms)} recoveries ({', '.join(f'{v:.0f}' for v in up_ms)} ms): one ping a "
                      "second, so up to about 1 s")

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
        self.health()
        self.outage()
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
        self.row("idle RSS after the run", None, None, TARGETS["rss_after_mb"], unit="MB", value=rss_mb(self.agent.proc.pid),
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
    digits = 2 if s and s["median_ms"] < 10 else 1  # sub-millisecond rows (/health) need the second digit
    return f"{s['median_ms']:.{digits}f} (p90 {s['p90_ms']:.{digits}f})" if s else "-"


def format_row(r: dict) -> str:
    delta = "-"
    if "value" in r:
        agent, direct, ratio = (f"{r['value']:.1f} {r['unit']}", "-", "-") if r["unit"] != "x" else ("-", "-", f"{r['value']:.2f}x")
    else:
        agent, direct = fmt_ms(r.get("agent")), fmt_ms(r.get("direct"))
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
    delta = f"{r['overhead_ms']:+.1f}" if "overhead_ms" in r else "-"
    if r["target"] is None:
        target = "-"
    else:
        unit = r["unit"] if "value" in r and r["unit"] != "x" else "x"
        target = f"{'>=' if r.get('at_least') else '<='} {r['target']:g}{'' if unit == 'x' else ' '}{unit}"
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
