"""The cost of the filtered Docker API (dtma_agent.docker_filter) against the direct Docker socket, same run.

Rows: opening (and closing) an endpoint; GET /containers/json over one keep-alive connection, through the
filter and direct; a whole `docker ps` CLI process (the real /usr/bin/docker), through the filter and direct.
The two sides are interleaved, alternating which goes first. Usage: python bench/bench_docker_filter.py [N]
"""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from dtma_agent.docker_filter import DockerFilter

DOCKER_SOCKET = "/var/run/docker.sock"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.unix_path)


def api_call(conn: http.client.HTTPConnection) -> float:
    started = time.perf_counter()
    conn.request("GET", "/v1.41/containers/json")
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    return time.perf_counter() - started


def cli_ps(socket_path: str, home: str) -> float:
    started = time.perf_counter()
    subprocess.run(["/usr/bin/docker", "ps", "-q"], check=True, capture_output=True,
                   env={"PATH": "/usr/bin", "HOME": home, "DOCKER_HOST": f"unix://{socket_path}"})
    return time.perf_counter() - started


def paired(label: str, filtered, direct, n: int) -> None:
    via, plain = [], []
    for i in range(n):
        for side in ((filtered, via), (direct, plain))[:: 1 if i % 2 else -1]:
            side[1].append(side[0]())
    diff = statistics.median(a - b for a, b in zip(via, plain))
    print(f"{label:<34} filter {statistics.median(via) * 1e3:7.2f} ms   direct {statistics.median(plain) * 1e3:7.2f} ms"
          f"   ratio {statistics.median(via) / statistics.median(plain):5.2f}   +{diff * 1e3:.2f} ms")


async def open_close(directory: str, n: int) -> list[float]:
    flt, opens = DockerFilter(), []
    for i in range(n):
        started = time.perf_counter()
        endpoint = await flt.open(f"{directory}/{i}.sock")
        opens.append(time.perf_counter() - started)
        await endpoint.close()
    return opens


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    home = tempfile.mkdtemp(prefix="dtf-bench-", dir="/tmp")
    try:
        opens = asyncio.run_coroutine_threadsafe(open_close(home, 20 * n), loop).result()
        opens.sort()
        print(f"{'open + serve an endpoint':<34} median {statistics.median(opens) * 1e6:.0f} us, "
              f"p90 {opens[int(len(opens) * 0.9)] * 1e6:.0f} us ({len(opens)} opens)")
        path = os.path.join(home, "docker.sock")
        endpoint = asyncio.run_coroutine_threadsafe(DockerFilter().open(path), loop).result()
        via, plain = UnixHTTPConnection(path), UnixHTTPConnection(DOCKER_SOCKET)
        paired("GET /containers/json (keep-alive)", lambda: api_call(via), lambda: api_call(plain), 10 * n)
        paired("docker ps -q (CLI process)", lambda: cli_ps(path, home), lambda: cli_ps(DOCKER_SOCKET, home), n)
        asyncio.run_coroutine_threadsafe(endpoint.close(), loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
