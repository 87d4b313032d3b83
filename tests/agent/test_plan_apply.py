"""Plan = apply: `reconcile.decide` is the one decision, `/…/validate` reports it and the apply does it.

Part 1 is a pure unit matrix of `decide` over constructed observations. Part 2 builds each reproducible container
state for real (deploy through the agent, then change the container with the Docker API), and checks for an MCP
group (POST /mcp/validate, POST /mcp/groups) and for a tool (POST /tools/validate, PUT /tools/{name}) that the
validate names the action, the apply reports the matching outcome and leaves the container as it says, and a
validate right after says `unchanged` (or, for a container still failing, the same action again).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable

import docker.errors
import pytest

from dtma_agent import docker_state as ds
from dtma_agent import reconcile
from dtma_agent.reconcile import Desired, Observed, decide
from dtma_testing import BUSYBOX, wait_until

NOW = 1_700_000_000.0
SETTLE = 3.0
GROUP = "grp-a"


# ================================================================ part 1: decide(), a pure function

def desired(kind: str = ds.KIND_MCP, group: str | None = GROUP, cmd: tuple = ("sleep", "3600"),
            image_id: str | None = "sha256:" + "a" * 64, account: str = "ati-1") -> Desired:
    labels = {ds.MANAGED_BY: ds.MANAGED_VALUE, ds.KIND: kind, ds.INSTANCE: "srv", ds.ACCOUNT_TOOL: account}
    if kind == ds.KIND_MCP:
        labels.update({ds.GROUP: group, ds.TRANSPORT: "stdio", ds.ENDPOINT: "/mcp", ds.MCP_PORT: ""})
    config = {"Image": BUSYBOX, "Cmd": list(cmd), "Labels": labels}
    labels[ds.CONFIG_HASH] = ds.config_hash(config)
    return Desired("srv", kind, config, BUSYBOX, image_id, group=group if kind == ds.KIND_MCP else None)


def observed(want: Desired, state: str = "running", restart_count: int = 0, exit_code: int | None = 0,
             up_s: float | None = 600.0, labels: dict | None = None, image_id: str | None = None,
             parked: bool = False) -> Observed:
    """What observe() would read for a container deployed from `want` (or with `labels`), `up_s` after its last start."""
    labels = dict(want.config["Labels"] if labels is None else labels)
    view = {"container_id": "c" * 64, "name": want.name, "state": state, "config_hash": labels.get(ds.CONFIG_HASH),
            "image_id": image_id or want.image_id, "kind": labels.get(ds.KIND), "group_id": labels.get(ds.GROUP)}
    started = None if up_s is None else NOW - up_s
    return Observed(view, restart_count, exit_code, started, labels, parked)


def relabel(want: Desired, **changes) -> dict:
    labels = dict(want.config["Labels"])
    for key, value in changes.items():
        if value is None:
            labels.pop(key, None)
        else:
            labels[key] = value
    return labels


MCP, TOOL = desired(), desired(kind=ds.KIND_TOOL, group=None)
OTHER_CONFIG = desired(cmd=("sleep", "3601"))

# (id, want, current, action, reason substring)
MATRIX = [
    ("missing", MCP, None, "create", "not deployed"),
    ("created", MCP, observed(MCP, "created", exit_code=0, up_s=None), "start", "container is created but never started"),
    ("running-stable", MCP, observed(MCP), "unchanged", "up to date"),
    ("running-restarted-long-ago", MCP, observed(MCP, restart_count=4, up_s=reconcile.RESTART_SETTLED_S + 1), "unchanged",
     "up to date"),
    ("running-restarted-recently", MCP, observed(MCP, restart_count=4, exit_code=1, up_s=0.4), "recreate",
     "crash-looping: restarted 4 times, last 0.4s ago (exit code 1)"),
    ("exited-0", MCP, observed(MCP, "exited", exit_code=0), "start", "container is exited (exit code 0)"),
    ("exited-3", MCP, observed(MCP, "exited", exit_code=3), "start", "container is exited (exit code 3)"),
    ("restarting", MCP, observed(MCP, "restarting", restart_count=7, exit_code=1), "recreate",
     "crash-looping: restarting after 7 restarts (exit code 1)"),
    ("paused", MCP, observed(MCP, "paused"), "start", "container is paused"),
    ("dead", MCP, observed(MCP, "dead", exit_code=137), "recreate", "container is dead"),
    ("removing", MCP, observed(MCP, "removing"), "recreate", "container is removing"),
    ("config-changed", OTHER_CONFIG, observed(MCP), "recreate", "configuration changed"),
    ("config-changed-and-stopped", OTHER_CONFIG, observed(MCP, "exited", exit_code=3), "recreate", "configuration changed"),
    ("image-changed", MCP, observed(MCP, image_id="sha256:" + "b" * 64), "recreate", "image changed"),
    ("image-to-be-pulled", desired(image_id=None), observed(MCP, image_id="sha256:" + "b" * 64), "unchanged", "up to date"),
    ("labels-tampered", MCP, observed(MCP, labels=relabel(MCP, **{ds.ACCOUNT_TOOL: "someone-else"})), "recreate",
     "labels differ from the spec: agentopia.account_tool_instance_id"),
    ("label-missing", MCP, observed(MCP, labels=relabel(MCP, **{ds.ENDPOINT: None, ds.TRANSPORT: None})), "recreate",
     "labels differ from the spec: agentopia.mcp_endpoint_path, agentopia.mcp_transport"),
    ("labels-beat-config", OTHER_CONFIG, observed(MCP, labels=relabel(MCP, **{ds.ACCOUNT_TOOL: "x"})), "recreate",
     "labels differ from the spec: agentopia.account_tool_instance_id"),
    ("other-group", MCP, observed(MCP, labels=relabel(MCP, **{ds.GROUP: "grp-b"})), "conflict",
     "the name is used by an MCP server of group grp-b"),
    ("unmanaged", MCP, observed(MCP, labels={"maintainer": "someone"}), "conflict",
     "the name is used by a container the agent does not manage"),
    ("managed-by-other-tool", MCP, observed(MCP, labels=relabel(MCP, **{ds.MANAGED_BY: "other"})), "conflict",
     "does not manage"),
    ("mcp-wants-a-tool's-name", MCP, observed(TOOL), "conflict", "the name is used by a tool instance of this agent"),
    ("tool-wants-an-mcp-server's-name", TOOL, observed(MCP), "conflict", f"an MCP server of group {GROUP}"),
    ("conflict-beats-crash-loop", MCP, observed(TOOL, "restarting", restart_count=9), "conflict", "a tool instance"),
    ("tool-running", TOOL, observed(TOOL), "unchanged", "up to date"),
    ("tool-exited", TOOL, observed(TOOL, "exited", exit_code=143), "start", "container is exited (exit code 143)"),
    ("tool-crash-looping", TOOL, observed(TOOL, restart_count=1, up_s=1.0), "recreate", "crash-looping"),
    ("parked-running", MCP, observed(MCP, parked=True), "start", "restored from an interrupted recreate"),
    ("parked-exited", MCP, observed(MCP, "exited", exit_code=143, parked=True), "start",
     "container is exited (exit code 143) (restored from an interrupted recreate)"),
    ("parked-config-changed", OTHER_CONFIG, observed(MCP, "exited", parked=True), "recreate",
     "configuration changed (restored from an interrupted recreate)"),
    ("parked-other-group", MCP, observed(MCP, labels=relabel(MCP, **{ds.GROUP: "grp-b"}), parked=True), "conflict",
     "grp-b"),
]


@pytest.mark.parametrize("want, current, action, reason", [m[1:] for m in MATRIX], ids=[m[0] for m in MATRIX])
def test_decide_matrix(want, current, action, reason):
    got = decide(current, want, SETTLE, now=NOW)
    assert got[0] == action, f"expected {action!r} ({reason!r}), decide said {got}"
    assert reason in got[1], f"the reason {got[1]!r} does not contain {reason!r}"


def test_only_a_parked_container_says_restored():
    for _id, want, current, _action, _reason in MATRIX:
        if current is not None and not current.parked:
            assert "restored" not in decide(current, want, SETTLE, now=NOW)[1], _id


@pytest.mark.parametrize("kind", [ds.KIND_MCP, ds.KIND_TOOL])
def test_a_crash_loop_is_never_unchanged(kind):
    """Every restarted container inside the settle window, and every `restarting` one, is a recreate."""
    want = MCP if kind == ds.KIND_MCP else TOOL
    seen = []
    for restarts in (1, 2, 5, 50):
        for up in (0.0, 0.01, SETTLE / 2, SETTLE - 0.01):
            for exit_code in (None, 0, 1, 137):
                seen.append((("running", restarts, up, exit_code),
                             decide(observed(want, "running", restarts, exit_code, up), want, SETTLE, now=NOW)))
        for exit_code in (None, 0, 1):
            for up in (None, 0.0, 1000.0):  # a restarting container's last start says nothing of its health
                for r in (0, restarts):
                    seen.append((("restarting", r, up, exit_code),
                                 decide(observed(want, "restarting", r, exit_code, up), want, SETTLE, now=NOW)))
    wrong = [(case, got) for case, got in seen if got[0] != "recreate" or "crash-looping" not in got[1]]
    assert not wrong, f"{len(wrong)} crash-looping observations were not a crash-looping recreate: {wrong[:5]}"


def test_restarts_count_until_dockers_back_off_resets_or_the_settle_window_ends():
    """Docker resets a container's restart back-off after 10 s of running: a restart more recent than that, or than a
    longer settle window, is a crash loop whatever the settle window; one longer ago is history."""
    recent = observed(MCP, restart_count=2, up_s=reconcile.RESTART_SETTLED_S - 1)
    assert decide(recent, MCP, 0, now=NOW)[0] == "recreate"
    assert decide(recent, MCP, 2.5, now=NOW)[0] == "recreate"
    settled = observed(MCP, restart_count=2, up_s=reconcile.RESTART_SETTLED_S + 1)
    assert decide(settled, MCP, 0, now=NOW) == ("unchanged", "up to date")
    assert decide(settled, MCP, reconcile.RESTART_SETTLED_S + 5, now=NOW)[0] == "recreate", "a longer window counts"
    assert decide(observed(MCP, restart_count=0, up_s=0.1), MCP, 3, now=NOW) == ("unchanged", "up to date"), \
        "a container that never restarted is not a crash loop, however young"


def test_parked_names():
    cid = "0123456789abcdef" * 4
    assert reconcile.parked_name("srv-1", cid) == "srv-1-dtma-old-0123456789ab"
    assert reconcile.parked_owner("srv-1-dtma-old-0123456789ab") == "srv-1"
    assert reconcile.parked_owner("a-dtma-old-b-dtma-old-0123456789ab") == "a-dtma-old-b"
    for not_parked in ("srv-1", "srv-1-dtma-old-0123456789a", "srv-1-dtma-old-0123456789abc", "srv-1-dtma-old-0123456789AB",
                       "-dtma-old-0123456789ab"):
        assert reconcile.parked_owner(not_parked) is None, not_parked


# ================================================================ part 2: plan = apply against a real engine

SLEEP = ["sleep", "3600"]
OLD = "-dtma-old-"


@dataclass
class Target:
    """One managed container, as a one-server MCP group or as a tool, with the same four verbs for both."""
    kind: str
    agent: object
    api: object
    name: str
    group: str | None = None

    def body(self, spec: dict, settle: float | None = None) -> dict:
        override = {"Cmd": spec.get("cmd", SLEEP)}
        if spec.get("binds"):
            override["HostConfig"] = {"Binds": spec["binds"]}
        common = {"instanceNameOnToolbox": self.name, "dockerImageUrl": spec.get("image", BUSYBOX),
                  "accountToolInstanceId": f"ati-{self.name}", "baseConfigOverrideJson": override}
        if self.kind == "tool":
            return {**common, **({"settleSeconds": settle} if settle is not None else {})}
        body = {"groupId": self.group, "servers": [{**common, "mcpTransportType": "stdio"}]}
        if settle is not None:
            body["options"] = {"settleSeconds": settle}
        return body

    def volume(self, suffix: str = "data") -> str:
        """A named volume this container may mount (the agent allows only its own)."""
        return f"agentopia-tool-{self.name}-{suffix}" if self.kind == "tool" else f"agentopia-mcp-{self.group}-{suffix}"

    def deploy(self, spec: dict) -> str:
        """Deployed through the agent (settle 0: quick, the state is built afterwards); the container id."""
        if self.kind == "tool":
            r = self.agent.post("/tools", json=self.body(spec, settle=0))
            assert r.status_code == 201, r.text
            return r.json()["data"]["container_id"]
        r = self.agent.post("/mcp/groups", json=self.body(spec, settle=0))
        assert r.status_code == 201, r.text
        return r.json()["data"]["servers"][0]["container_id"]

    def validate(self, spec: dict) -> dict:
        if self.kind == "tool":
            r = self.agent.post("/tools/validate", json=self.body(spec))
            assert r.status_code == 200, r.text
            return r.json()["data"]["plan"]
        r = self.agent.post("/mcp/validate", json=self.body(spec))
        assert r.status_code == 200, r.text
        steps = r.json()["data"]["plan"]
        assert [s["name"] for s in steps] == [self.name], f"one step for the one server expected: {steps}"
        assert r.json()["data"]["changes"] == (0 if steps[0]["action"] == "unchanged" else 1), r.json()["data"]
        return steps[0]

    def apply(self, spec: dict) -> tuple[int, dict]:
        """The apply's status and its result for this container: outcome, reason, container_id, or the failure."""
        if self.kind == "tool":
            r = self.agent.session.put(f"{self.agent.url}/tools/{self.name}", json=self.body(spec), timeout=120)
            out = r.json()
            if out["success"]:
                assert out["changed"] is (out["outcome"] != "unchanged"), out
                return r.status_code, {"outcome": out["outcome"], "reason": out["reason"],
                                       "container_id": out["data"]["container_id"], "state": out["data"]["state"]}
            assert out["data"]["outcome"] == "failed" and out["error"] == out["data"]["error"], out
            return r.status_code, out["data"]
        r = self.agent.post("/mcp/groups", json=self.body(spec))
        servers = r.json()["data"]["servers"]
        assert [s["name"] for s in servers] == [self.name], r.text
        return r.status_code, servers[0]

    # -- what Docker holds under this name

    def holders(self) -> dict[str, dict]:
        """Every container named after this one (itself and any kept aside), by name."""
        found = self.api.containers(all=True, filters={"name": f"^/{self.name}"})
        return {c["Names"][0].lstrip("/"): c for c in found}

    def inspect(self) -> dict:
        return self.api.inspect_container(self.name)


def clone(t: Target, source_id: str, name: str | None = None, cmd: list | None = None, restart: str | None = None,
          labels: dict | None = None, start: bool = True) -> str:
    """A hand-made container with the source's image, labels (config hash included) and host config essentials,
    optionally another command, restart policy or labels; the source is removed first when the name is its own."""
    info = t.api.inspect_container(source_id)
    cfg, host = info["Config"], info["HostConfig"]
    config = {"Image": cfg["Image"], "Cmd": cmd or cfg["Cmd"], "Env": cfg.get("Env"),
              "Labels": {**cfg["Labels"], **(labels or {})},
              "HostConfig": {"Init": host.get("Init"), "NetworkMode": host.get("NetworkMode"), "Binds": host.get("Binds"),
                             "RestartPolicy": {"Name": restart} if restart else host["RestartPolicy"]}}
    name = name or t.name
    if name == t.name:
        t.api.remove_container(source_id, force=True)
    new_id = t.api.create_container_from_config(config, name)["Id"]
    if start:
        t.api.start(new_id)
    return new_id


def state_of(api, cid: str) -> dict:
    info = api.inspect_container(cid)
    return {"status": info["State"]["Status"], "exit_code": info["State"]["ExitCode"], "restarts": info["RestartCount"]}


def wait_state(api, cid: str, predicate: Callable[[dict], bool], what: str, timeout: float = 15) -> dict:
    got = wait_until(lambda: predicate(state_of(api, cid)), timeout, 0.05)
    assert got, f"container never got {what}: {state_of(api, cid)}"
    return state_of(api, cid)


# exits with `code` the first time it runs, sleeps from its second start on (its file system survives a start);
# the image is a minimal busybox: sh, echo, sleep, cat, no touch
def runs_once_then_sleeps(code: int) -> list:
    return ["sh", "-c", f"[ -e /ran ] && exec sleep 3600; echo > /ran; echo first run; exit {code}"]


@dataclass
class Built:
    spec: dict                       # what validate and apply are given
    reason: str                      # the plan's reason contains this
    before: str | None = None        # the container id under the name before the apply
    facts: dict = field(default_factory=dict)


def s_missing(t):
    return Built({}, "not deployed")


def s_exited(t):
    cid = t.deploy({})
    t.api.stop(cid, timeout=5)
    code = state_of(t.api, cid)["exit_code"]
    return Built({}, f"container is exited (exit code {code})", cid)


def s_created(t):
    cid = clone(t, t.deploy({}), start=False)
    return Built({}, "container is created but never started", cid)


def s_exited_code(code):
    def build(t):
        cid = clone(t, t.deploy({}), cmd=runs_once_then_sleeps(code), restart="no")
        wait_state(t.api, cid, lambda s: s["status"] == "exited", "exited")
        return Built({}, f"container is exited (exit code {code})", cid)
    return build


def s_exited_still_crashing(t):
    cid = clone(t, t.deploy({}), cmd=["sh", "-c", "echo boom; exit 3"], restart="no")
    wait_state(t.api, cid, lambda s: s["status"] == "exited", "exited")
    return Built({}, "container is exited (exit code 3)", cid, {"exit_code": 3})


def s_crash_loop(t):
    """Crash-looping under the spec's labels; the spec itself runs: a recreate cures it."""
    cid = clone(t, t.deploy({}), cmd=["sh", "-c", "echo boom; exit 1"], restart="always")
    wait_state(t.api, cid, lambda s: s["restarts"] >= 2, "restarted twice")
    return Built({}, "crash-looping", cid)


def s_crash_loop_spec_crashes(t):
    """The spec's own command crash-loops (it finds a marker in its volume, which a recreate keeps): the
    recreate fails and the old container is restored."""
    volume = t.volume()
    spec = {"cmd": ["sh", "-c", "while [ ! -e /data/crash ]; do sleep 0.1; done; echo boom; exit 1"],
            "binds": [f"{volume}:/data"]}
    cid = t.deploy(spec)
    exec_id = t.api.exec_create(cid, ["sh", "-c", "echo > /data/crash"])["Id"]
    t.api.exec_start(exec_id)
    assert t.api.exec_inspect(exec_id)["ExitCode"] == 0
    wait_state(t.api, cid, lambda s: s["restarts"] >= 2, "restarted twice")
    return Built(spec, "crash-looping", cid, {"exit_code": 1, "volume": volume})


def s_paused(t):
    cid = t.deploy({})
    t.api.pause(cid)
    return Built({}, "container is paused", cid)


def s_config_changed(t):
    return Built({"cmd": ["sleep", "3601"]}, "configuration changed", t.deploy({}))


def s_image_changed(t):
    repo = f"local/{t.name}"
    t.api.tag(BUSYBOX, repo, "v1")
    cid = t.deploy({"image": f"{repo}:v1"})
    base = t.api.create_container(BUSYBOX, command=["true"])["Id"]
    try:  # the same reference now names another image (a rebuilt tag)
        t.api.commit(base, repository=repo, tag="v1", conf={"Labels": {"rebuilt": uuid.uuid4().hex}})
    finally:
        t.api.remove_container(base, force=True)
    return Built({"image": f"{repo}:v1"}, "image changed", cid, {"image": f"{repo}:v1"})


def s_labels_tampered(t):
    cid = clone(t, t.deploy({}), labels={ds.ACCOUNT_TOOL: "someone-else"})
    return Built({}, "labels differ from the spec: agentopia.account_tool_instance_id", cid)


def s_parked(t):
    """An interrupted recreate: the old container stopped and renamed aside, no new one."""
    cid = t.deploy({})
    t.api.stop(cid, timeout=5)
    t.api.rename(cid, reconcile.parked_name(t.name, cid))
    code = state_of(t.api, cid)["exit_code"]
    return Built({}, f"container is exited (exit code {code}) (restored from an interrupted recreate)", cid)


def s_parked_running(t):
    """Kept aside while still running (the agent stopped between the rename and the stop)."""
    cid = t.deploy({})
    t.api.rename(cid, reconcile.parked_name(t.name, cid))
    return Built({}, "restored from an interrupted recreate", cid)


def s_parked_and_main(t):
    """A recreate that finished but did not remove the kept-aside container."""
    cid = t.deploy({})
    spare = clone(t, cid, name=f"{t.name}-spare", start=False)
    t.api.rename(spare, reconcile.parked_name(t.name, spare))
    return Built({}, "up to date; 1 container(s) kept aside by an interrupted recreate are removed", cid,
                 {"parked": spare})


def s_unmanaged(t):
    cid = t.api.create_container(BUSYBOX, command=SLEEP, name=t.name)["Id"]
    t.api.start(cid)
    return Built({}, "the name is used by a container the agent does not manage", cid)


def s_other_kind(t):
    """The name is held by the agent's other kind: a tool for a group's server, a group's server for a tool."""
    if t.kind == "group":
        r = t.agent.post("/tools", json={"dockerImageUrl": BUSYBOX, "instanceNameOnToolbox": t.name,
                                         "accountToolInstanceId": "a-tool", "baseConfigOverrideJson": {"Cmd": SLEEP},
                                         "settleSeconds": 0})
        assert r.status_code == 201, r.text
        return Built({}, "the name is used by a tool instance of this agent", r.json()["data"]["container_id"])
    r = t.agent.post("/mcp/groups", json={"groupId": t.group, "options": {"settleSeconds": 0}, "servers": [
        {"instanceNameOnToolbox": t.name, "dockerImageUrl": BUSYBOX, "mcpTransportType": "stdio",
         "baseConfigOverrideJson": {"Cmd": SLEEP}}]})
    assert r.status_code == 201, r.text
    return Built({}, f"the name is used by an MCP server of group {t.group}", r.json()["data"]["servers"][0]["container_id"])


# id: (builder, plan action, apply outcome, container under the name afterwards: same | new | none)
STATES = {
    "missing": (s_missing, "create", "created", "new"),
    "exited": (s_exited, "start", "started", "same"),
    "created": (s_created, "start", "started", "same"),
    "exited-0": (s_exited_code(0), "start", "started", "same"),
    "exited-3": (s_exited_code(3), "start", "started", "same"),
    "exited-3-still-crashing": (s_exited_still_crashing, "start", "failed", "same"),
    "crash-loop": (s_crash_loop, "recreate", "recreated", "new"),
    "crash-loop-spec-crashes": (s_crash_loop_spec_crashes, "recreate", "failed", "same"),
    "paused": (s_paused, "start", "started", "same"),
    "config-changed": (s_config_changed, "recreate", "recreated", "new"),
    "image-changed": (s_image_changed, "recreate", "recreated", "new"),
    "labels-tampered": (s_labels_tampered, "recreate", "recreated", "new"),
    "parked": (s_parked, "start", "started", "same"),
    "parked-running": (s_parked_running, "start", "started", "same"),
    "parked-and-main": (s_parked_and_main, "clean", "cleaned", "same"),
    "unmanaged": (s_unmanaged, "conflict", "failed", "same"),
    "other-kind": (s_other_kind, "conflict", "failed", "same"),
}


def action_of(state: str) -> str:
    return STATES[state][1]


@pytest.fixture(params=["group", "tool"])
def target(request, agent, docker_api, name, groups, cleanup):
    kind = request.param
    t = Target(kind, agent, docker_api, name("pa"), name("grp"))  # a tool's group id is the holder of other-kind
    groups.append(t.group)
    cleanup.append(t.name)
    yield t
    for c in t.holders().values():  # kept-aside ones too (the group's cleanup would get those, a tool's would not)
        try:
            docker_api.remove_container(c["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass
    try:
        docker_api.remove_volume(t.volume(), force=True)
    except docker.errors.NotFound:
        pass
    try:
        docker_api.remove_image(f"local/{t.name}:v1", force=True)
    except docker.errors.ImageNotFound:
        pass


@pytest.mark.parametrize("state", list(STATES))
def test_plan_then_apply(target, state):
    t = target
    build, action, outcome, after = STATES[state]
    built = build(t)

    plan = t.validate(built.spec)
    assert (plan["action"], plan["container_id"]) == (action, built.before), f"{state}: plan {plan}"
    assert built.reason in plan["reason"], f"{state}: plan reason {plan['reason']!r} lacks {built.reason!r}"

    status, result = t.apply(built.spec)
    assert result["outcome"] == outcome, f"{state}: plan said {action}, apply did {result}"
    holders = t.holders()
    parked_left = sorted(n for n in holders if OLD in n)
    assert not parked_left, f"{state}: kept-aside containers left after the apply: {parked_left}"

    if outcome == "failed":
        _check_failure(t, state, built, status, result)
    else:
        assert status == (201 if t.kind == "group" or outcome == "created" else 200), (status, result)
        # the apply reports the plan's reason (a crash loop's restart count may have grown in between)
        assert built.reason in result["reason"], result
        if "crash-looping" not in plan["reason"]:
            assert result["reason"] == plan["reason"], (plan, result)
        info = t.inspect()
        assert info["State"]["Status"] == "running" and info["RestartCount"] == 0, f"{state}: {info['State']}"
        assert result["container_id"] == info["Id"], result
        if after == "same":
            assert info["Id"] == built.before, f"{state}: {outcome} must keep the container, it was replaced"
        else:
            assert info["Id"] != built.before, f"{state}: {outcome} must be a new container"
            if built.before:
                assert built.before not in [c["Id"] for c in t.api.containers(all=True)], "the old container is left"
        if "parked" in built.facts:
            assert built.facts["parked"] not in [c["Id"] for c in t.api.containers(all=True)], "parked one not removed"
        assert info["Config"]["Labels"][ds.ACCOUNT_TOOL] == f"ati-{t.name}"

    again = t.validate(built.spec)
    if outcome == "failed":
        assert again["action"] == action, f"{state}: still failing, so the next plan is {action} again: {again}"
        assert built.reason in again["reason"], again
    else:
        assert (again["action"], again["reason"]) == ("unchanged", "up to date"), f"{state}: after {outcome}: {again}"
        assert again["container_id"] == result["container_id"]


def _check_failure(t: Target, state: str, built: Built, status: int, result: dict) -> None:
    info = t.inspect()
    assert info["Id"] == built.before, f"{state}: the container under the name was replaced: {info['Id']}"
    if action_of(state) == "conflict":
        assert (status, result["error"]) == (409, "name conflict"), result
        assert built.reason in result["message"], result
        assert info["State"]["Running"] is True, "the holder of the name is left alone"
        labels = info["Config"]["Labels"] or {}
        if state == "unmanaged":
            assert ds.MANAGED_BY not in labels, labels
        else:
            assert labels[ds.KIND] == ("tool" if t.kind == "group" else "mcp"), labels
        return
    assert (status, result["error"]) == (422, "not ready"), result
    assert result["exit_code"] == built.facts["exit_code"], result
    assert any("boom" in line for line in result["logs"]), f"the logs of the failed container: {result['logs']}"
    assert "boom" in result["message"] and f"exit code {built.facts['exit_code']}" in result["message"], result["message"]
    if state == "exited-3-still-crashing":
        # started, exited again: nothing else was done to it
        assert result["restart_count"] == 0 and result["state"] == "exited", result
        assert "restored" not in result["message"], result["message"]
        assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 3
    else:
        # the NEW container crash-looped (restart policy unless-stopped) and went; the old one is back, in its state
        assert result["state"] in ("restarting", "running", "exited"), result
        assert f"{result['restart_count']} restarts" in result["message"], result
        assert result["message"].endswith("; the previous container was restored"), result["message"]
        assert info["State"]["Status"] in ("running", "restarting"), f"the old container was not started again: {info['State']}"
