"""Runs the ansible-test integration targets (tests/integration/targets/) against a real agent and real Docker.

    python tests/integration/run_targets.py [ansible-test integration arguments, e.g. dtma_tool or -v]

Starts what the targets need, the way the pytest suites do (tests/dtma_testing.py): the exec sandbox's launcher,
and one agent that runs from DTMA_HOME/current/bin/dtma-agent under a supervisor standing in for systemd's
Restart=always, with the releases 1.0.0 (current), 1.1.0 and 9.9.9-broken, so that dtma_redeploy really restarts
and switches it. The targets learn where the agent is from tests/integration/integration_config.yml (ansible-test
passes it as extra vars; it starts no processes itself and passes none of our environment to the playbooks), written
here with mode 0600 and handed to scripts/ansible-test.sh through DTMA_INTEGRATION_CONFIG. Every container the
targets make is named with this run's prefix and removed at the end, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import docker
import yaml

from dtma_testing import (BROKEN_RELEASE, BUSYBOX, MCP_IMAGE, PREFIX, SANDBOX_ENV, Agent, SandboxLauncher, Supervisor, free_port,
                          remove_prefixed, wait_until, write_release)

REPO = Path(__file__).resolve().parents[2]
RELEASES = {"current": "1.0.0", "other": "1.1.0", "broken": "9.9.9-broken"}


def check_docker(api: docker.APIClient) -> None:
    api.ping()
    for image in (BUSYBOX, MCP_IMAGE):
        api.inspect_image(image)  # raises ImageNotFound: run scripts/images.sh


def main(args: list[str]) -> int:
    api = docker.APIClient(version="auto")
    try:
        check_docker(api)
    except docker.errors.DockerException as exc:
        print(f"run_targets: Docker or an image is missing ({exc}); run scripts/setup.sh", file=sys.stderr)
        return 3
    tmp = Path(tempfile.mkdtemp(prefix="dtmatest-targets-"))
    home = tmp / "dtma-home"
    write_release(home, RELEASES["current"])
    write_release(home, RELEASES["other"])
    write_release(home, RELEASES["broken"], BROKEN_RELEASE)
    os.symlink(f"releases/{RELEASES['current']}", home / "current")
    launcher = SandboxLauncher(tmp)
    agent = Agent(tmp, env={"DTMA_HOME": str(home)})
    supervisor = Supervisor(home, agent, tmp)
    try:
        SANDBOX_ENV.update(launcher.start().env)
        agent.env.update(SANDBOX_ENV)  # the agent's environment was made before the launcher's socket existed
        supervisor.start()
        if not wait_until(agent.answers, 20):
            print("run_targets: the agent did not answer:\n" + (tmp / "supervised-agent.log").read_text(errors="replace"),
                  file=sys.stderr)
            return 1
        config = tmp / "integration_config.yml"
        config.touch(mode=0o600)
        config.write_text(yaml.safe_dump({
            "dtma_url": agent.url, "dtma_token": agent.token,
            "dtma_dead_url": f"http://127.0.0.1:{free_port()}",  # where no agent listens
            "dtma_test_prefix": PREFIX, "dtma_busybox_image": BUSYBOX, "dtma_mcp_image": MCP_IMAGE,
            "dtma_docker": shutil.which("docker", path="/usr/bin") or "docker",
            "dtma_home": str(home), "dtma_releases": RELEASES}))
        env = dict(os.environ, DTMA_INTEGRATION_CONFIG=str(config))
        cmd = ["bash", str(REPO / "scripts" / "ansible-test.sh"), "integration", *args]
        rc = subprocess.run(cmd, env=env, check=False).returncode
        if rc != 0:
            print("run_targets: the agent's log (last 60 lines):\n" + "\n".join(
                (tmp / "supervised-agent.log").read_text(errors="replace").splitlines()[-60:]), file=sys.stderr)
        return rc
    finally:
        supervisor.stop()
        agent.session.close()
        launcher.stop()
        remove_prefixed(api)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
