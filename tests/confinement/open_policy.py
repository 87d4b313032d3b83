"""A policy that opens layer 3 (the command policy) as far as the policy format allows, so that the attacks reach
the sandbox and the filtered Docker API: every command name the default policy knows (allowed or denied) is
allowed with any arguments, no path is secret or protected, every directory is scratch. What stays refused is
structural (dynamic command words, eval, background jobs, loops, unparseable input) and the agent's own pid,
which the agent adds to every policy; the attacks that still get refused count as blocked, as in the default pass.
"""

from __future__ import annotations

import copy

OPEN = {"category": "open", "unknown_args": True}


def open_policy(default: dict) -> dict:
    names = set(default["executables"]) | set(default["deny_executables"]) | {
        "install", "prlimit", "renice", "ln", "git", "man", "apt-get", "setsid", "printenv", "yes", "pkill",
        "killall", "less", "more", "python3", "python", "docker", "kill", "sh", "bash", "env"}
    names -= set(default["wrappers"])
    names = {n for n in names if not any(c in n for c in "*?[")}
    wrappers = {}
    for name, spec in default["wrappers"].items():
        spec = copy.deepcopy(spec)
        spec.pop("deny_flags", None)
        spec.pop("no_command", None)
        wrappers[name] = spec
    return {
        "version": 1,
        "description": "tests/confinement: layer 3 opened to test the sandbox and the Docker filter on their own",
        "scratch_dirs": ["/etc", "/var", "/opt", "/usr", "/root", "/home", "/run", "/dev", "/tmp", "/proc", "/sys",
                         "/srv", "/boot", "/bin", "/sbin", "/lib", "/media", "/mnt"],
        "secret_paths": [],
        "secret_exceptions": [],
        "endless_sources": [],
        "protected_paths": {},
        "protected_units": {},
        "protected_process_names": [],
        "deny_substrings": {},
        "readable_variables": ["*"],
        "env_vars": {"allow": ["*"], "deny": {}},
        "loopback_denied_ports": {},
        "disk_fill_limit_bytes": 1 << 40,
        "deny_executables": {},
        "wrappers": wrappers,
        "executables": {name: dict(OPEN) for name in sorted(names)},
    }
