"""Fleet bench: a health check of every host with agentopia.dtma.dtma_info against ansible.builtin.ping.

N real agents on loopback are N inventory hosts (ansible_connection=local, each host its own agent and token).
For each fleet size the same inventory, forks and controller run two one-task playbooks, interleaved:
`ansible.builtin.ping` (a module round trip per host) and `agentopia.dtma.dtma_info` with `gather: [health]`
delegated to localhost, as playbooks/diagnostics.yml runs it. The ratio is the median wall time of dtma_info over
that of ping. Every run must report every host ok (and every agent healthy: a failed_when on the task), or the
bench fails: a fast wrong
answer is not a result.

    .venv/bin/python bench/bench_fleet.py [--sizes 50,200] [--forks 25] [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_agent import Agent, AgentStartError, BenchError, rss_mb

REPO = Path(__file__).resolve().parents[1]
TARGET = 1.0
RECAP = re.compile(r"^(h\d+)\s+: (ok=.*)$", re.M)

PING = """- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
"""

HEALTH = """- hosts: all
  gather_facts: false
  tasks:
    - agentopia.dtma.dtma_info:
        url: "{{ dtma_url }}"
        token: "{{ dtma_token }}"
        gather: [health]
      delegate_to: localhost
      register: dtma
      failed_when: dtma.health.overall != 'healthy'
"""


def write_inventory(path: Path, agents: list[Agent]) -> None:
    hosts = {f"h{i:03d}": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                           "dtma_url": agent.base, "dtma_token": agent.token}
             for i, agent in enumerate(agents)}
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    path.chmod(0o600)  # the agents' tokens


def run_playbook(work: Path, playbook: Path, forks: int, hosts: int) -> float:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(work / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_RETRY_FILES_ENABLED="false", ANSIBLE_FORKS=str(forks),
               ANSIBLE_LOCAL_TEMP=str(work / "tmp"), NO_PROXY="127.0.0.1,localhost")
    started = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(work / "inventory.json"),
                           str(playbook)], env=env, capture_output=True, text=True, timeout=1800, check=False)
    elapsed = time.monotonic() - started
    recap = dict(RECAP.findall(done.stdout))
    bad = [host for host, line in recap.items() if not line.startswith("ok=1 ") or " failed=0 " not in line
           or " unreachable=0 " not in line]
    if done.returncode != 0 or len(recap) != hosts or bad:
        why = [line[:600] for line in done.stdout.splitlines() if line.startswith(("fatal:", "failed:"))][:3]
        raise BenchError(f"{playbook.name}: rc {done.returncode}, {len(recap)}/{hosts} hosts in the recap, not ok: "
                         f"{bad[:5]}: {why or done.stderr[-1000:]}")
    return elapsed


def measure(size: int, forks: int, reps: int, work: Path, log_dir: Path) -> dict:
    agents = [Agent(log_dir, f"fleet-{size}-{i}") for i in range(size)]
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda a: a.start(timeout_s=180), agents))
        write_inventory(work / "inventory.json", agents)
        ping, health = work / "ping.yml", work / "health.yml"
        times = {"ping": [], "dtma_info": []}
        run_playbook(work, ping, forks, size)  # warm-up: caches, bytecode
        run_playbook(work, health, forks, size)
        for rep in range(reps):
            order = [("ping", ping), ("dtma_info", health)]
            for name, playbook in order if rep % 2 == 0 else reversed(order):
                times[name].append(run_playbook(work, playbook, forks, size))
        rss = statistics.median(rss_mb(a.proc.pid) for a in agents)
    finally:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda a: a.stop(), agents))
    med = {name: statistics.median(values) for name, values in times.items()}
    return {"hosts": size, "forks": forks, "reps": reps, "ping_s": round(med["ping"], 2),
            "dtma_info_s": round(med["dtma_info"], 2), "ratio": round(med["dtma_info"] / med["ping"], 2),
            "agent_rss_mb_median": round(rss, 1), "all_runs": {k: [round(v, 2) for v in vs] for k, vs in times.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200", help="fleet sizes, comma separated (default 50,200)")
    parser.add_argument("--forks", type=int, default=25)
    parser.add_argument("--reps", type=int, default=3, help="timed runs of each playbook per size (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dtma-fleet-bench-") as tmp:
        work = Path(tmp)
        (work / "collections" / "ansible_collections" / "agentopia").mkdir(parents=True)
        (work / "collections" / "ansible_collections" / "agentopia" / "dtma").symlink_to(REPO)
        (work / "tmp").mkdir()
        (work / "ping.yml").write_text(PING)
        (work / "health.yml").write_text(HEALTH)
        try:
            for size in (int(s) for s in args.sizes.split(",")):
                rows.append(measure(size, args.forks, args.reps, work, work))
                row = rows[-1]
                verdict = "meets" if row["ratio"] <= TARGET else "misses"
                print(f"{row['hosts']:>4} hosts, forks {row['forks']}: ping {row['ping_s']:.2f} s, dtma_info health "
                      f"{row['dtma_info_s']:.2f} s, ratio {row['ratio']:.2f}x ({verdict} <= {TARGET}x); agent RSS "
                      f"median {row['agent_rss_mb_median']} MB", flush=True)
        except AgentStartError as exc:
            print(f"an agent did not start: {exc}", file=sys.stderr)
            return 2
        except BenchError as exc:
            print(f"the bench failed: {exc}", file=sys.stderr)
            return 1
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"target": TARGET, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
