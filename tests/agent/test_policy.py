"""Unit tests of the command safety policy.

Pure: no Docker, no network, and nothing is ever executed; every test only asks the policy for a verdict.
The corpora in policy_corpus/ are test data: one command per line, grouped by `# category:` comments.
"""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path

import pytest

from dtma_agent import policy as policy_pkg
from dtma_agent.policy import (
    DEFAULT_POLICY,
    Policy,
    PolicyContext,
    PolicyError,
    default_policy,
    dump_default_policy,
    load_policy,
)
from dtma_agent.policy import _policy_words, engine

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "policy_corpus"
ENGINE_SOURCE = ROOT / "plugins" / "module_utils" / "_policy.py"


def corpus(name: str) -> list:
    """[(category, line number, command)] from a corpus file."""
    entries, category = [], None
    for number, line in enumerate((CORPUS / name).read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("# category:"):
            category = line.split(":", 1)[1].strip()
        elif line.strip() and not line.lstrip().startswith("#"):
            entries.append((category, number, line))
    return entries


DANGEROUS = corpus("dangerous.txt")
ROUTINE = corpus("routine.txt")


def check(command: str, **context):
    return default_policy().check_command(command, PolicyContext(**context))


# --- the corpora --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("category,number,command",
                         [pytest.param(*e, id=f"{e[1]}:{e[2][:70]}") for e in DANGEROUS])
def test_dangerous_command_is_denied(category, number, command):
    verdict = check(command)
    assert verdict.allowed is False, f"[{category}] line {number} allowed: {command!r} ({verdict.reason})"
    assert verdict.rule.startswith("deny.") or verdict.rule == "default_deny", verdict.rule
    assert verdict.reason


@pytest.mark.parametrize("category,number,command",
                         [pytest.param(*e, id=f"{e[1]}:{e[2][:70]}") for e in ROUTINE])
def test_routine_command_is_allowed(category, number, command):
    verdict = check(command)
    assert verdict.allowed is True, f"[{category}] line {number} denied: {command!r} ({verdict.rule}: {verdict.reason})"
    assert verdict.rule.startswith("allow.")


def test_corpora_are_large_and_cover_every_category():
    assert len(DANGEROUS) >= 180 and len(ROUTINE) >= 80
    categories = {entry[0] for entry in DANGEROUS}
    assert {"fs_destruction", "block_device", "power", "privilege", "reverse_shell", "download_execute", "secrets",
            "protected_process", "docker_escape", "persistence", "firewall", "log_tampering", "fork_bomb",
            "disk_fill", "code_execution", "system_change"} <= categories
    assert all(entry[0] for entry in DANGEROUS + ROUTINE), "every corpus line sits under a `# category:` comment"


# --- verdict shape and default deny -------------------------------------------------------------------------
def test_unknown_executable_is_not_in_policy():
    verdict = check("frobnicate --all")
    assert (verdict.allowed, verdict.rule, verdict.reason) == (False, "default_deny", "not in policy: frobnicate")
    assert verdict.commands == [{"argv": ["frobnicate", "--all"], "executable": "frobnicate", "wrappers": [],
                                 "allowed": False, "rule": "default_deny", "reason": "not in policy: frobnicate"}]


def test_specific_denial_wins_over_default_deny_in_the_reason():
    verdict = check("frobnicate; rm -rf /")
    assert verdict.rule == "deny.fs_destruction"
    assert [c["executable"] for c in verdict.commands] == ["frobnicate", "rm"]


def test_every_simple_command_is_listed():
    verdict = check("docker ps | grep mcp | wc -l && echo $(uptime)")
    assert verdict.allowed and verdict.rule == "allow.all"
    assert [c["executable"] for c in verdict.commands] == ["docker", "grep", "wc", "echo", "uptime"]
    assert all(c["allowed"] and c["rule"].startswith("allow.") for c in verdict.commands)


def test_verdict_as_dict_is_json():
    assert json.loads(json.dumps(check("docker ps").as_dict()))["allowed"] is True


# --- wrappers -----------------------------------------------------------------------------------------------
def test_wrappers_are_looked_through():
    verdict = check("timeout 5 nice -n 10 env LANG=C docker ps")
    assert verdict.allowed
    assert verdict.commands[0]["executable"] == "docker"
    assert verdict.commands[0]["wrappers"] == ["timeout", "nice", "env"]


@pytest.mark.parametrize("command", ["timeout 5 rm -rf /", "env -i rm -rf /", "busybox rm -rf /",
                                     "nohup nice ionice -c3 rm -rf /", "command rm -rf /", "exec rm -rf /",
                                     "stdbuf -o0 rm -rf /", "/usr/bin/rm -rf /", "r''m -rf /", "\\rm -rf /"])
def test_wrapped_and_disguised_rm_is_found(command):
    verdict = check(command)
    assert verdict.rule == "deny.fs_destruction"
    assert verdict.commands[-1]["executable"] == "rm"


def test_sudo_is_denied_not_unwrapped():
    verdict = check("sudo docker ps")
    assert verdict.rule == "deny.privilege"


# --- needs_shell --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command,needs_shell", [
    ("docker ps", False),
    ("docker inspect --format '{{.State.Status}}' x", False),
    ("docker ps | grep x", True),
    ("docker ps > /tmp/x", True),
    ("docker ps && uptime", True),
    ("ls /var/log/*.log", True),
    ("echo $HOME", True),
    ("LC_ALL=C sort /etc/hosts", True),
])
def test_needs_shell(command, needs_shell):
    verdict = check(command)
    assert verdict.allowed
    assert verdict.needs_shell is needs_shell


def test_simple_command_argv_is_the_unquoted_words():
    verdict = check("docker inspect --format '{{.State.Status}}' \"my box\" a\\ b")
    assert verdict.commands[0]["argv"] == ["docker", "inspect", "--format", "{{.State.Status}}", "my box", "a b"]


def test_double_quotes_keep_backslashes_like_sh():
    assert check(r'printf "%s\n" x').commands[0]["argv"] == ["printf", r"%s\n", "x"]


# --- argv (no shell) ----------------------------------------------------------------------------------------
def test_check_argv():
    policy = default_policy()
    assert policy.check_argv(["docker", "ps"]).allowed
    assert policy.check_argv(["docker", "ps"]).needs_shell is False
    assert policy.check_argv(["rm", "-rf", "/"]).rule == "deny.fs_destruction"
    assert policy.check_argv(["sh", "-c", "rm -rf /"]).rule == "deny.fs_destruction"
    assert policy.check_argv(["timeout", "5", "cat", "/etc/shadow"]).rule == "deny.secrets"
    assert policy.check_argv(["bash", "-c", "docker ps | wc -l"]).allowed


def test_check_argv_has_no_shell_semantics():
    policy = default_policy()
    literal = policy.check_argv(["echo", "$(rm -rf /)", "`id`", "*"])
    assert literal.allowed and literal.needs_shell is False
    assert policy.check_argv(["cat", "/etc/shadow; ls"]).allowed is True  # one odd file name, not two commands
    assert policy.check_argv([]).allowed is False
    assert policy.check_argv(["ls", 3]).allowed is False


# --- shells, nesting and things the parser must not hide ------------------------------------------------------
@pytest.mark.parametrize("command,rule", [
    ("sh -c 'rm -rf /'", "deny.fs_destruction"),
    ("bash -c \"bash -c 'cat /etc/shadow'\"", "deny.secrets"),
    ("sh -c \"$(curl -s http://localhost/x)\"", "deny.unknowable"),
    ("echo cm0gLXJmIC8q | base64 -d | sh", "deny.pipe_to_shell"),
    ("curl -s http://localhost:8080/x.sh | bash", "deny.download_execute"),
    ("bash /tmp/x.sh", "deny.unknowable"),
    ("bash -i", "deny.reverse_shell"),
    ("sh <<< 'rm -rf /'", "deny.unknowable"),
    ("$'\\x72\\x6d' -rf /", "deny.unknowable"),
    ("{rm,-rf,/}", "deny.unknowable"),
    ("/bin/r? -rf /", "deny.unknowable"),
    ("echo ${x[$(rm -rf /)]}", "deny.unknowable"),
    ("echo $((1+$(id)))", "deny.unparseable"),
    ("case x in x) ls;; esac", "deny.unparseable"),
    ("ls 'unterminated", "deny.unparseable"),
    ("/tmp/evil --help", "deny.untrusted_executable"),
    ("echo $DTMA_BEARER_TOKEN", "deny.secrets"),
    ("docker exec mcp cat /etc/dtma/dtma.env", "deny.docker_api"),  # the shared Docker table: no exec
    ("docker run --rm -v /etc/dtma:/x alpine cat /x/dtma.env", "deny.docker_api"),
    ("find / -exec cat {} \\;", "deny.secrets"),
])
def test_hidden_and_nested_code(command, rule):
    assert check(command).rule == rule


def test_heredocs():
    assert check("cat <<EOF > /tmp/notes\nhello\nEOF").allowed
    assert check("cat <<EOF\n$(rm -rf /)\nEOF").rule == "deny.unknowable"
    assert check("sh <<EOF\nrm -rf /\nEOF").allowed is False
    assert check("cat <<EOF > /etc/cron.d/x\n* * * * * root id\nEOF").rule == "deny.persistence"


def test_redirect_targets_are_checked():
    assert check("docker ps 2>&1 > /tmp/out.txt").allowed
    assert check("docker ps > /dev/null").allowed
    assert check("echo x > /dev/sda").rule == "deny.block_device"
    assert check("echo b > /proc/sysrq-trigger").rule == "deny.power"
    assert check("echo x >> ~/.bashrc").rule == "deny.persistence"
    assert check("cat < /etc/shadow").rule == "deny.secrets"
    assert check("{ ls; } > /etc/passwd").rule == "deny.privilege"
    assert check("exec 3<>/dev/tcp/10.0.0.1/80").rule == "deny.reverse_shell"


def test_structural_denials():
    assert check(":(){ :|:& };:").rule == "deny.fork_bomb"
    assert check("while true; do ls; done").rule == "deny.loop"
    assert check("sleep 100 &").rule == "deny.background"


def test_cd_is_followed():
    assert check("cd /etc && cat shadow").rule == "deny.secrets"
    assert check("cd /tmp && rm -rf debug").allowed
    assert check("cd /tmp; rm -rf debug").allowed is False  # if cd failed, rm would run in /
    assert check("cd /tmp | true && rm -rf debug").allowed is False  # a pipeline's cd changes nothing here


# --- loading policies ---------------------------------------------------------------------------------------
def test_custom_policy_allows_only_what_it_lists():
    policy = load_policy({"version": 1, "executables": {"uptime": {"category": "system_read"}}})
    assert policy.check_command("uptime").allowed
    verdict = policy.check_command("df")
    assert (verdict.rule, verdict.reason) == ("default_deny", "not in policy: df")


def test_custom_policy_inherits_the_safety_lists():
    policy = load_policy({"version": 1, "executables": {"cat": {"path_rule": "read"}}})
    assert policy.check_command("cat /etc/hostname").allowed
    assert policy.check_command("cat /etc/shadow").rule == "deny.secrets"


def test_deny_wins_over_allow():
    policy = load_policy({"version": 1,
                          "executables": {"uptime": {}, "ls": {"allow_flags": ["-l"], "deny_flags": {"-l": "secrets"}}},
                          "deny_executables": {"uptime": "power"}})
    assert policy.check_command("uptime").rule == "deny.power"
    assert policy.check_command("ls -l").rule == "deny.secrets"


@pytest.mark.parametrize("document,named", [
    ([], "policy"),
    ({"executables": {}}, "policy.version"),
    ({"version": 2, "executables": {}}, "policy.version"),
    ({"version": 1, "executabels": {}}, "policy.executabels"),
    ({"version": 1, "executables": {"cat": {"path_rule": "bogus"}}}, "policy.executables.cat.path_rule"),
    ({"version": 1, "executables": {"cat": {"colour": "red"}}}, "policy.executables.cat.colour"),
    ({"version": 1, "executables": {"cat": {"handler": "magic"}}}, "policy.executables.cat.handler"),
    ({"version": 1, "executables": {"cat": {"same_as": "dog"}}}, "policy.executables.cat.same_as"),
    ({"version": 1, "executables": {"x": {"subcommands": {"y": {"max_operands": "2"}}}}},
     "policy.executables.x.subcommands.y.max_operands"),
    ({"version": 1, "deny_executables": {"rm": "Not A Category"}}, "policy.deny_executables.rm"),
    ({"version": 1, "wrappers": {"env": {"category": "x"}}}, "policy.wrappers.env.category"),
    ({"version": 1, "secret_paths": "/etc/shadow"}, "policy.secret_paths"),
])
def test_policy_errors_name_the_bad_key(document, named):
    with pytest.raises(PolicyError) as error:
        load_policy(document)
    assert named in str(error.value)


def test_load_policy_from_files(tmp_path):
    good = tmp_path / "policy.json"
    good.write_text(json.dumps({"version": 1, "executables": {"uptime": {}}}), encoding="utf-8")
    assert load_policy(good).check_command("uptime").allowed
    assert load_policy(str(good)).check_command("df").reason == "not in policy: df"
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(PolicyError, match="broken.json"):
        load_policy(broken)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.json")
    bad_key = tmp_path / "bad.json"
    bad_key.write_text(json.dumps({"version": 1, "executables": {"cat": {"path_rule": 1}}}), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"bad.json: policy.executables.cat.path_rule"):
        load_policy(bad_key)


def test_load_policy_from_yaml(tmp_path):
    document = tmp_path / "policy.yml"
    document.write_text("version: 1\nexecutables:\n  uptime: {}\n", encoding="utf-8")
    if engine.HAS_YAML:
        assert load_policy(document).check_command("uptime").allowed
    else:
        with pytest.raises(PolicyError, match="PyYAML"):
            load_policy(document)


def test_default_policy_is_valid_data_and_dumps_as_json():
    Policy(DEFAULT_POLICY)
    assert json.loads(dump_default_policy()) == DEFAULT_POLICY
    assert "executables" in engine.POLICY_SCHEMA


# --- the context ----------------------------------------------------------------------------------------------
def test_context_secret_paths():
    assert check("cat /srv/agent/token").allowed
    assert check("cat /srv/agent/token", secret_paths=("/srv/agent/token",)).rule == "deny.secrets"
    assert check("grep -r x /srv", secret_paths=("/srv/agent/token",)).rule == "deny.secrets"


def test_context_protected_pids():
    assert check("kill 4242").allowed
    assert check("kill -9 4242", protected_pids=(4242,)).rule == "deny.protected_process"
    assert check("kill 1").rule == "deny.protected_process"


def test_context_protected_units():
    assert check("systemctl restart myapp").allowed
    assert check("systemctl restart myapp.service", protected_units=("myapp",)).rule == "deny.protected_process"


def test_context_scratch_dirs_and_agent_home():
    assert check("rm -rf /srv/scratch/x").allowed is False
    assert check("rm -rf /srv/scratch/x", scratch_dirs=("/srv/scratch",)).allowed
    assert check("rm -rf /srv/scratch", scratch_dirs=("/srv/scratch",)).allowed is False  # the root itself
    assert check("cp /tmp/x /srv/dtma/bin/", scratch_dirs=("/srv",), agent_home="/srv/dtma").rule == "deny.persistence"


def test_context_cwd():
    assert check("rm -rf debug").allowed is False  # cwd defaults to /
    assert check("rm -rf debug", cwd="/tmp").allowed
    assert check("cat ../etc/shadow", cwd="/tmp").rule == "deny.secrets"


def test_resolve_paths_follows_symlinks(tmp_path):
    link = tmp_path / "link"
    os.symlink("/etc", link)
    command = f"rm -rf {link}/passwd"
    scratch = (str(tmp_path),)
    assert check(command, scratch_dirs=scratch).allowed  # lexically inside the scratch dir...
    verdict = check(command, scratch_dirs=scratch, resolve_paths=True)
    assert verdict.allowed is False  # ...but really /etc/passwd
    assert verdict.rule == "deny.privilege"


@pytest.mark.parametrize("user_glob,policy_pattern,overlap", [
    ("/etc/sh*", "/etc/shadow", True),
    ("/e?c/*", "/etc/shadow", True),
    ("/var/log/nginx/*.log", "*/.env.*", False),  # a shell * never matches a leading dot...
    ("/var/log/nginx/.*", "*/.env.*", True),  # ...an explicit one does
    ("/root/*", "/root/.ssh", False),
    ("/home/*/.ssh/id_rsa", "/home/*/.ssh/*", True),
    ("/proc/1/task/1/environ", "/proc/*/environ", True),  # a policy * crosses /
    ("/var/log/*/x", "/var/log/a/b/x", False),  # a shell * does not
    ("/etc/[^x]hadow", "/etc/shadow", True),  # bash negates with ^ as with ! (Python's fnmatch does not)
    ("/etc/[!s]hadow", "/etc/shadow", False),
    ("/etc/[[:alpha:]]hadow", "/etc/shadow", True),  # POSIX classes
    ("/etc/[[:digit:]]hadow", "/etc/shadow", False),
    ("/etc/[r-t]hadow", "/etc/shadow", True),  # ranges
    ("/etc/[]s]hadow", "/etc/shadow", True),  # a leading ] is a member
    ("/etc/[[.s.]]hadow", "/etc/shadow", True),  # not understood: may match anything
])
def test_glob_overlap_follows_shell_rules(user_glob, policy_pattern, overlap):
    assert engine._globs_overlap(user_glob, policy_pattern) is overlap


def test_glob_expansion_follows_shell_rules(tmp_path):
    for name in ("a", "b", "-rf", ".hidden"):
        (tmp_path / name).write_text("")
    assert sorted(os.path.basename(p) for p in _policy_words._expand_glob(f"{tmp_path}/[^a]*")) == ["-rf", "b"]
    assert sorted(os.path.basename(p) for p in _policy_words._expand_glob(f"{tmp_path}/[[:alpha:]]")) == ["a", "b"]
    assert check("rm [[:punct:]]rf", cwd="/tmp").allowed is False  # could expand to -rf


def test_tilde_user_is_that_users_home_on_the_agent():
    pwd = pytest.importorskip("pwd")
    try:
        home = pwd.getpwnam("bin").pw_dir
    except KeyError:
        pytest.skip("no user bin here")
    verdict = check("cat ~bin/../etc/shadow", resolve_paths=True)
    assert verdict.allowed is (os.path.normpath(home + "/../etc/shadow") != "/etc/shadow") or verdict.rule == "deny.secrets"
    assert check("cat ~bin/../etc/shadow").rule == "deny.unknowable"  # the controller does not know the host's homes
    assert check("cat ~nosuchuser-dtma/x", resolve_paths=True, cwd="/tmp").allowed  # bash leaves ~user as it is


# --- packaging: one source of truth, shippable by AnsiballZ ---------------------------------------------------
POLICY_FILES = sorted((ROOT / "plugins" / "module_utils").glob("_policy*.py"))


def test_agent_engine_is_the_module_utils_file():
    assert Path(engine.__file__).resolve() == ENGINE_SOURCE.resolve()
    assert policy_pkg.default_policy is engine.default_policy
    # every file of the policy is linked into the agent's package under its own name (no directory symlink)
    package = Path(policy_pkg.__file__).parent
    assert len(POLICY_FILES) >= 8
    for source in POLICY_FILES:
        link = package / ("engine.py" if source.name == "_policy.py" else source.name)
        assert link.is_symlink() and link.resolve() == source.resolve(), link


@pytest.mark.parametrize("source", POLICY_FILES, ids=lambda p: p.name)
def test_engine_is_self_contained_and_python38_syntax(source):
    text = source.read_text(encoding="utf-8")
    tree = ast.parse(text, feature_version=(3, 8))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level}
    assert imported <= {"__future__", "csv", "fnmatch", "importlib", "ipaddress", "json", "os", "posixpath", "re",
                        "socket", "sys", "traceback", "dataclasses", "urllib", "bashlex", "yaml", "shlex", "pwd",
                        "ansible_collections"}
    siblings = {p.stem for p in POLICY_FILES} | {"_docker_access", "docker_access"}  # the shared Docker table
    for node in ast.walk(tree):  # siblings only, both ways: by the collection path and relatively
        if isinstance(node, ast.ImportFrom) and (node.level or node.module.startswith("ansible_collections")):
            name = node.module.rsplit(".", 1)[-1]
            assert name in siblings, node.module
            assert node.level == 1 or node.module == "ansible_collections.agentopia.dtma.plugins.module_utils." + name
            assert node.level == 0 or name != "_docker_access"  # the agent links it as docker_access.py
    assert max(len(line) for line in text.splitlines()) <= 160
    assert len(text.splitlines()) <= 650, "keep each policy file small enough to read"
    assert "This file is private to this collection" in text


def test_inputs_that_hang_the_parser_are_denied_quickly():
    started = time.monotonic()
    verdict = check("\\;'${'''")  # sends bashlex 0.18 into an endless loop
    assert verdict.rule == "deny.unparseable"
    assert time.monotonic() - started < 5


def test_without_bashlex_everything_is_denied(monkeypatch):
    monkeypatch.setattr(engine, "HAS_BASHLEX", False)
    verdict = default_policy().check_command("docker ps")
    assert verdict.allowed is False and "bashlex is not installed" in verdict.reason
