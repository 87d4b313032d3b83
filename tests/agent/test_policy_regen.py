"""The command that runs is the command that was checked: a differential test of the regenerated scripts.

Every command here is checked by the policy, and the script the verdict says to run (verdict.run_argv) is run
by the real bash with PATH pointing at a directory of logging stubs (every shell builtin that can be turned off
is turned off through BASH_ENV; the stubs run with bash -p, which ignores it), in a temporary directory. Nothing real runs: each stub only records its
argv. The commands that ran must be exactly the ones the verdict lists in commands[]. The original strings
are run the same way, to count where bash alone would have disagreed with the parser (the reason for
regenerating); hand-written cases pin known parser/shell differentials.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from dtma_agent.policy import PolicyContext, default_policy

BASH = shutil.which("bash") or "/bin/bash"
STUBS = ["echo", "printf", "true", "false", "test", "[", "pwd", "kill", "type", "uptime", "df", "ls", "cat", "grep",
         "wc", "head", "sort", "docker", "id", "whoami", "date", "uname", "sleep", "free", "pidof", "pgrep", "tr",
         "cut", "uniq", "tail", "timeout", "nice", "env", "xargs", "hostname", "basename", "systemctl", "journalctl",
         "rm", "mkdir", "touch", "ps", "ss", "ip", "sed", "awk", "jq", "find", "tar", "gzip", "diff", "tee"]
NOT_LOGGED = {"cd", "export", "set", "unset", ":"}  # special builtins bash cannot turn off
DYNAMIC = set("$*?[{~`(")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("regen")
    bin_dir, work = root / "bin", root / "work"
    bin_dir.mkdir()
    work.mkdir()
    log = root / "log"
    stub = f"""#!{BASH} -p
r="${{0##*/}}"; for a in "$@"; do r+=$'\\037'"$a"; done; printf '%s' "$r" > "$STUB_LOG/$$.$RANDOM$RANDOM"
"""  # a file per record: the stages of a pipeline run at the same time
    for name in STUBS:
        path = bin_dir / name
        path.write_text(stub)
        path.chmod(0o755)
    for shell in ("sh", "bash"):  # shells log themselves and run their -c string with the same stubs
        path = bin_dir / shell
        path.write_text(stub + f'exec {BASH} "$@"\n')
        path.chmod(0o755)
    bash_env = root / "bash_env"
    bash_env.write_text("enable -n echo printf true false test [ pwd kill type\n")
    for name in ("f.txt", "my file", "a.log", "b.log"):
        (work / name).write_text("x\n")
    return dict(bin=bin_dir, work=work, log=log, env=bash_env)


def run_logged(sandbox, argv):
    """Run argv under the stubs; the argvs the stubs saw."""
    shutil.rmtree(sandbox["log"], ignore_errors=True)
    sandbox["log"].mkdir()
    env = {"PATH": str(sandbox["bin"]), "BASH_ENV": str(sandbox["env"]), "STUB_LOG": str(sandbox["log"]),
           "HOME": str(sandbox["work"]), "LANG": "C"}
    subprocess.run(argv, cwd=sandbox["work"], env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=20,
                   check=False)
    records = [p.read_text(errors="replace") for p in sandbox["log"].iterdir()]
    return [tuple(r.split("\x1f")) for r in records]


def expected(verdict):
    """(names, exact argvs) the verdict lists: an argv with expansions in it is compared by name only."""
    names, exact = set(), set()
    for entry in verdict.commands:
        if not entry["argv"] or not entry["executable"] and not entry["wrappers"]:
            continue
        name = os.path.basename(entry["argv"][0])
        names.add(name)
        if not any(c in DYNAMIC for word in entry["argv"] for c in word):
            exact.add((name,) + tuple(entry["argv"][1:]))
    return names, exact


def check_same(sandbox, command, total):
    """Assert what ran == what the verdict lists; returns (verdict, whether the original string agreed)."""
    context = PolicyContext(cwd=str(sandbox["work"]), scratch_dirs=(str(sandbox["work"]),))
    verdict = default_policy().check_command(command, context)
    if not verdict.allowed:
        return verdict, None
    assert verdict.run_argv, command
    names, exact = expected(verdict)
    ran = run_logged(sandbox, verdict.run_argv)
    ran_names = {r[0] for r in ran}
    # nothing ran that the policy did not see, and each argument list is the one it checked
    assert ran_names <= names, (command, verdict.run_argv, ran_names - names)
    dynamic = {os.path.basename(e["argv"][0]) for e in verdict.commands
               if e["argv"] and any(c in DYNAMIC for word in e["argv"] for c in word)}
    dynamic |= {"sh", "bash"}  # their -c string runs regenerated: its commands are compared instead
    static = names - dynamic - NOT_LOGGED
    for record in ran:
        if record[0] in static:
            assert record in exact, (command, verdict.run_argv, record, exact)
    if total:  # every listed command runs (stubs exit 0, no || or else): all of them ran
        assert names - NOT_LOGGED <= ran_names, (command, verdict.run_argv, names - ran_names)
        assert {e for e in exact if e[0] in static} <= set(ran), (command, exact - set(ran))
    original = run_logged(sandbox, [BASH, "--norc", "--noprofile", "-c", command])
    return verdict, {r[0] for r in original} == ran_names


# --- generated compound commands -------------------------------------------------------------------------
WORDS = ["a", "'a b'", '"x y"', "a\\ b", "'x;y'", '"p|q"', "\\&", "'#c'", "'if'", '"done"', "'$(id)'", '"\\$x"',
         "x=1", "'--'", "-n", '""', "it\\'s", '"$HOME"', "${HOME}", "*.txt", "[ab].log", "{1,2}", "~/d", "'{}'",
         "'*'", "\"a'b\"", "'\"'", "$'x'"]
FILES = ["f.txt", "'my file'", "\"my file\"", "my\\ file", "a.log"]


def simple(rng):
    pick = rng.choice
    return pick([
        lambda: "echo " + " ".join(rng.sample(WORDS, rng.randint(1, 4))),
        lambda: "printf '%s\\n' " + " ".join(rng.sample(WORDS, rng.randint(1, 3))),
        lambda: pick(["uptime", "id", "whoami", "true", "pwd", "free -m", "df -h", "uname -a", "date +%s", "hostname"]),
        lambda: "cat " + pick(FILES),
        lambda: "grep -c " + pick(["x", "'a b'", '"^x$"']) + " " + pick(FILES),
        lambda: pick(["wc -l", "head -n 3", "sort", "tail -n 1"]) + " " + pick(FILES),
        lambda: "ls -la " + pick(["", "*.log", "[ab].log", "'my file'", "."]),
        lambda: "docker " + pick(["ps", "logs web", "inspect --format '{{.State.Status}}' web", "restart web"]),
        lambda: "sleep 0",
        lambda: "kill -HUP $(pidof nginx)",
        lambda: "tr a-z A-Z",
        lambda: "timeout 5 " + pick(["uptime", "docker ps", "cat f.txt"]),
    ])()


def compound(rng, depth=0):
    """(command, total): total is False when a listed command may be skipped (||, else, a false condition)."""
    if depth > 2 or rng.random() < 0.3:
        return simple(rng), True
    a, ta = compound(rng, depth + 1)
    b, tb = compound(rng, depth + 1)
    form = rng.randrange(15)
    if form == 0:
        return f"{a} | {b}", ta and tb
    if form == 1:
        return f"{a} && {b}", ta and tb
    if form == 2:
        return f"{a} ; {b}", ta and tb
    if form == 3:
        return f"{a} || {b}", False
    if form == 4:
        return f"( {a} )", ta
    if form == 5:
        return f"{{ {a} ; }}", ta
    if form == 6:
        return f"echo \"x$({a})y\"", ta
    if form == 7:
        return f"if {a} ; then {b} ; fi", ta and tb
    if form == 8:
        return f"if {a} ; then {b} ; else echo no ; fi", False
    if form == 9:
        return f"for v in one 'two 2' three ; do echo \"$v\" ; {b} ; done", tb
    if form == 10:
        return f"{a} > out.txt ; cat out.txt", ta
    if form == 11:
        return f"{a} 2>&1 | {b} >> out.txt", ta and tb
    if form == 12:
        body = rng.choice(["id", "$(id)", "`id`", "E", "'E'", "x\\", "\tE", "EOF"])
        return f"cat <<'EOF'\nline {body}\n{body}\nEOF\n{b}", tb
    if form == 13:
        return f"cat <<< {rng.choice(WORDS)} && {b}", tb
    return f"{a} < f.txt", ta


GENERATED = []
_rng = random.Random(20261130)
while len(GENERATED) < 320:
    GENERATED.append(compound(_rng))

# --- hand-written: known parser/shell differentials and routine forms --------------------------------------
HANDWRITTEN = [
    ("cat <<'true'\ntrue\nid\n'true'", True),  # the held-out attack: bash ends the body at the first `true`
    ("cat <<\"E\"\n$(id)\nE\necho done", True),
    ("cat <<E\nplain text\nE\necho after", True),
    ("cat <<-E\n\tindented\n\tE\nuptime", True),
    ("cat <<'E'\nx\\\nE\nid", True),  # a quoted body keeps its backslash-newline
    ("cat <<A <<B\na\nA\nb\nB\nuptime", True),
    ("cat <<A; cat <<B\na\nA\nb\nB", True),
    ("cat <<'EOF'\nhello\nEOF", True),
    ("for c in web db; do docker restart \"$c\"; done", True),
    ("for f in a.log b.log; do wc -l $f; done", True),
    ("export LANG=C.UTF-8 && date", True),
    ("kill -HUP $(pidof nginx)", True),
    ("kill -HUP \"$(pgrep -x nginx)\"", True),
    ("cd /tmp && ls", True),
    ("sh -c 'uptime; id'", True),
    ("sh -c \"cat <<'X'\nbody\nX\"", True),
    ("bash -c 'echo {a,b} | tr a-z A-Z'", True),
    ("echo 'if' 'then' 'fi' | cat", True),
    ("echo a#b # a comment", True),
    ("echo x\\\ny | cat", True),
    ("echo $'a\\tb' | cat", True),
    ("ls [!a]*.log | cat", True),
    ("ls [[:alpha:]].log | cat", True),
    ("ls []a].log [^a].log | cat", True),
    ("cat [[:alpha:]].log", True),
    ("echo ${HOME%/*} | cat", True),
    ("{ uptime; id; } > out.txt", True),
    ("(uptime) 2>&1 | cat", True),
    ("! grep -q zzz f.txt && echo none", False),
    ("echo a && { echo b || echo c; }", False),
    ("timeout 5 docker ps | grep -c web", True),
    ("docker ps --format '{{.Names}}' | xargs echo", True),
    ("echo \"$(echo \"$(id)\")\"", True),
    ("echo `id`", True),
    ('echo "$(echo ")")" | cat', True),
    ("echo $(echo a # c\n) | cat", True),  # a comment inside $( ): the script says what bashlex read
    ("echo a &\\\n& id", True),
    ("cat <<E\nE \nE\nid", True),  # `E ` is not the delimiter
    ("echo >(cat) | cat", True),
    ("echo a\\;id | cat", True),
    ("echo a | cat # && id", True),
]


# --- fuzz: commands of odd words and separators; whatever the policy allows must run as checked -------------
PIECES = ["x", "E", "'E'", "'", '"', "\\", "\\'", '\\"', ";", "#", "*", "[a]", "[!a]", "~", "$HOME", "${HOME}",
          "{a,b}", "{", "}", "=", "a\\ b", "'a b'", '"a b"', "!", "\t", "(", ")", "$(id)", "`id`", "<", ">", "|",
          "&", "'#'", '"$"', "$", "\\\n", "if", "done", "'\n'", '"\\n"']
SEPARATORS = [" ; ", " | ", " && ", " || ", "\n", " ;\n", " <<E\nid\nE\n", " <<'E'\n$(id)\nE\n", " <<-E\n\tx\n\tE\n",
              " > out.txt ; ", " 2>&1 | "]


def fuzz_command(rng):
    segments = []
    for _segment in range(rng.randint(1, 3)):
        words = ["".join(rng.choice(PIECES) for _piece in range(rng.randint(1, 3))) for _word in range(rng.randint(0, 3))]
        segments.append(" ".join([rng.choice(["echo", "cat", "uptime", "id", "printf %s"])] + words))
        segments.append(rng.choice(SEPARATORS))
    return "".join(segments[:-1])


FUZZ = []
_rng = random.Random(7)
while len(FUZZ) < 1500:
    FUZZ.append(fuzz_command(_rng))


def _run_all(sandbox, cases):
    results = []
    for command, total in cases:
        verdict, original_agrees = check_same(sandbox, command, total)
        results.append((command, verdict, original_agrees))
    return results


def test_regenerated_scripts_run_exactly_what_was_checked(sandbox):
    results = _run_all(sandbox, GENERATED)
    allowed = [r for r in results if r[1].allowed]
    refused = [r for r in results if r[1].rule == "deny.unknowable" and "as checked" in r[1].reason]
    # most generated commands are allowed and ran; the rest are denied by the policy for its own reasons
    assert len(allowed) >= 200, (len(allowed), [(r[0], r[1].reason) for r in results if not r[1].allowed][:20])
    print(f"\ngenerated {len(results)}: ran {len(allowed)}, refused as not regenerable {len(refused)}, "
          f"original string disagreed {sum(1 for r in allowed if r[2] is False)}")


def test_hand_written_differentials(sandbox):
    results = _run_all(sandbox, HANDWRITTEN)
    denied = [(r[0], r[1].rule, r[1].reason) for r in results if not r[1].allowed]
    # routine forms work; the few refusals are the ones this list expects
    assert {d[0] for d in denied} <= {"echo $'a\\tb' | cat"}, denied
    by_command = {r[0]: r for r in results}
    attack = by_command["cat <<'true'\ntrue\nid\n'true'"][1]
    assert [e["executable"] for e in attack.commands] == ["cat", "id", "true"]  # the policy now sees `id`
    print(f"\nhand-written {len(results)}: original string disagreed {sum(1 for r in results if r[2] is False)}")


def test_fuzzed_strings_run_exactly_what_was_checked(sandbox):
    results = _run_all(sandbox, [(f, False) for f in FUZZ])
    allowed = [r for r in results if r[1].allowed]
    assert len(allowed) >= 100
    print(f"\nfuzzed {len(results)}: ran {len(allowed)}, original string disagreed "
          f"{sum(1 for r in allowed if r[2] is False)}")


@pytest.mark.parametrize("command,why", [
    ("for f in *.log; do rm \"$f\"; done", "literal words only"),
    ("for f in a 'b c'; do cat $f; done", "split or globbed"),
    ("for f in a b; do sh -c \"echo $f\"; done", "differs between loop iterations"),
    ("for x in a b\ndo\n  cat <<E\n  hi\nE\ndone", "here-document"),
    ("{ cat <<E\nid\nE\n}", "here-document"),
    ("cat <<E\nx\\\nE\nid", "backslash-newline"),
    ("sh -c 'cat <<< x'", "bash-only"),
    ("kill $(pgrep nginx)", "pidof NAME"),
    ("kill -9 $(pidof dockerd)", "protected"),
])
def test_what_cannot_be_run_as_checked_is_refused(command, why):
    verdict = default_policy().check_command(command, PolicyContext(cwd="/tmp"))
    assert verdict.allowed is False and why in verdict.reason, (verdict.rule, verdict.reason)
    assert verdict.run_argv is None


def test_run_argv_shapes():
    policy = default_policy()
    assert policy.check_command("docker ps").run_argv == ["docker", "ps"]
    assert policy.check_argv(["docker", "ps", "-a"]).run_argv == ["docker", "ps", "-a"]
    compound = policy.check_command("docker ps | grep 'a b'")
    assert compound.run_argv == ["/bin/bash", "--norc", "--noprofile", "-c", "docker ps | grep 'a b'"]
    # a command string inside a simple command runs regenerated, for the shell it names
    nested = policy.check_argv(["sh", "-c", "uptime;id"])
    assert nested.run_argv == ["sh", "-c", "uptime ; id"]
    assert policy.check_command("cd /tmp").run_argv[:4] == ["/bin/bash", "--norc", "--noprofile", "-c"]
    assert policy.check_command("rm -rf /").run_argv is None
    assert "run_argv" in compound.as_dict()


@pytest.mark.skipif(not Path("/bin/bash").exists(), reason="needs /bin/bash")
def test_the_shell_is_bash():
    assert os.path.realpath("/bin/bash").endswith("bash")
