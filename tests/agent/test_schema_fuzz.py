"""Schemathesis against the agent's own /openapi.json: every operation, generated inputs, a real agent and Docker.

Asserted: at least MIN_CASES requests in total, no response with a status >= 500, and each response conforms to the
schema (content type and, where a schema is documented for its status, the body).

Made safe to run beside other tests on one Docker engine:
- POST /restart is excluded: it makes the agent exit (its own test is in test_lifecycle.py).
- POST /redeploy is fuzzed: the agent runs without DTMA_HOME, so a valid body is a 409 and nothing is switched.
- The agent's command policy allows only `echo` and `true`, and exec timeouts are capped at 2 s.
- Some create bodies are steered to a local image and to names under this session's test prefix, so containers
  and group networks really get created (and refused, recreated, removed); the fixture removes exactly those by
  name prefix afterwards. Unsteered bodies name random images that are not present and cannot be pulled (422).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter

import docker
import pytest
import schemathesis
from dtma_testing import AGENT_BIN, MCP_IMAGE, PREFIX, Agent, remove_prefixed
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

MAX_EXAMPLES = 90     # per operation; operations without inputs produce one case each
MIN_CASES = 1000
FUZZ = f"{PREFIX}fz"  # names of everything the steered cases create
STATS = {"cases": 0, "status": Counter(), "server_errors": []}


def _minimal_policy(path) -> str:
    """The shipped policy with only `echo` and `true` executable: fuzzed command lines cannot do anything."""
    policy = json.loads(subprocess.run([str(AGENT_BIN), "--dump-default-policy"], capture_output=True, text=True,
                                       check=True).stdout)
    policy["executables"] = {"echo": {"category": "output", "unknown_args": True},
                             "true": {"category": "builtin", "unknown_args": True}}
    policy["wrappers"] = {}
    path.write_text(json.dumps(policy))
    return str(path)


def _remove_ours(api: docker.APIClient) -> None:
    remove_prefixed(api, FUZZ)


@pytest.fixture(scope="module")
def fuzz_agent(docker_api, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {"DTMA_POLICY_FILE": _minimal_policy(tmp / "policy.json"), "DTMA_SCRATCH_DIR": str(tmp)}
    # Agent() drops every DTMA_* variable of the environment: no DTMA_HOME, so /redeploy is a 409
    agent = Agent(tmp, env).start()
    yield agent
    agent.stop()
    _remove_ours(docker_api)


@pytest.fixture(scope="module")
def api_schema(fuzz_agent):
    return schemathesis.openapi.from_dict(fuzz_agent.get("/openapi.json").json())


def _ours(name) -> str:
    tail = re.sub(r"[^a-zA-Z0-9_.-]", "", str(name))[:20]
    return f"{FUZZ}-{tail}"


def _steer(case) -> None:
    """Every third create body (chosen from the body itself, so a rerun steers the same cases) gets the local MCP
    image and a name of ours, so generated overrides, env and limits reach Docker; host ports are left out so that
    no fuzzed container takes a port another test is about to bind."""
    body = case.body
    if case.method == "POST" and case.path == "/ssh/execute" and isinstance(body, dict):
        if isinstance(body.get("timeout"), int) and not isinstance(body["timeout"], bool):
            body["timeout"] = max(1, min(body["timeout"], 2000))
        return
    if not isinstance(body, dict) or len(json.dumps(body, default=str)) % 3:
        return
    if case.path in ("/tools", "/tools/validate") and isinstance(body.get("instanceNameOnToolbox"), str):
        body.update(dockerImageUrl=MCP_IMAGE, instanceNameOnToolbox=_ours(body["instanceNameOnToolbox"]))
    elif case.path in ("/mcp/groups", "/mcp/validate") and isinstance(body.get("servers"), list) \
            and 0 < len(body["servers"]) <= 3 and all(isinstance(s, dict) for s in body["servers"]):
        body["groupId"] = _ours(body.get("groupId"))
        for i, server in enumerate(body["servers"]):
            server.update(dockerImageUrl=MCP_IMAGE, instanceNameOnToolbox=_ours(f"{i}{server.get('instanceNameOnToolbox')}"))
            server.pop("portBindings", None)


def _run(case, agent) -> None:
    _steer(case)
    response = case.call(base_url=agent.url, headers={"Authorization": f"Bearer {agent.token}"}, timeout=60)
    STATS["cases"] += 1
    STATS["status"][response.status_code] += 1
    if response.status_code >= 500:  # collected, so one run reports every kind of 5xx (asserted below)
        STATS["server_errors"].append(f"{case.method} {case.formatted_path} {case.query or ''} "
                                      f"{json.dumps(case.body, default=str)[:300] if case.body is not None else ''} "
                                      f"-> {response.status_code} {response.text[:300]}")
        return
    case.validate_response(response, checks=[content_type_conformance, response_schema_conformance])


def _operations():
    """(method, path) of every operation in the schema the code declares, for the test ids."""
    from dtma_agent.app import create_app
    from dtma_agent.settings import Settings
    paths = create_app(Settings(tokens={"agent": "fuzz-only-never-served-0123456789"})).openapi()["paths"]
    return [(m.upper(), p) for p, ms in paths.items() for m in ms if p != "/restart"]


# One hypothesis run per operation, driven here rather than by schemathesis' pytest plugin (whose lazy fixture
# loader does not work with pytest 9).
@pytest.mark.parametrize("method, path", _operations(), ids=lambda v: v)
def test_operation(api_schema, fuzz_agent, method, path):
    operation = api_schema[path][method].ok() if hasattr(api_schema[path][method], "ok") else api_schema[path][method]

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate], database=None)
    @given(case=operation.as_strategy())
    def run(case):
        _run(case, fuzz_agent)

    run()


def test_enough_cases_and_no_server_error(fuzz_agent):
    """Runs after every operation above (pytest keeps file order)."""
    print(f"schemathesis: {STATS['cases']} cases, statuses {dict(sorted(STATS['status'].items()))}")
    assert not STATS["server_errors"], f"{len(STATS['server_errors'])} 5xx:\n" + "\n".join(STATS["server_errors"][:20])
    assert STATS["cases"] >= MIN_CASES, STATS
    assert "Traceback" not in fuzz_agent.log(), fuzz_agent.log()[-5000:]
