# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# Public types of the command safety policy, and the denial every check raises (see _policy.py).

from dataclasses import dataclass


@dataclass(frozen=True)
class PolicyContext:
    """Per-host facts the rules need. Every field has a safe default.

    scratch_dirs     dirs where writes are allowed, added to the policy's (the agent adds its own scratch dir)
    secret_paths     files never read, added to the policy's (the agent's env file, token files)
    protected_pids   pids never signalled (the agent's own pid); pid 1 always is
    protected_units  systemd units never stopped/restarted/disabled, added to the policy's protected_units
    agent_home       the agent's install dir (DTMA_HOME): never written
    resolve_paths    resolve symlinks with os.path.realpath before path rules (agent side: the real host)
    cwd              the working directory commands run in: relative paths are resolved against it. The
                     executor MUST run commands in this directory (the agent uses its scratch dir).
    """

    scratch_dirs: tuple = ("/tmp", "/var/tmp")
    secret_paths: tuple = ()
    protected_pids: tuple = ()
    protected_units: tuple = ("dtma", "dtma.service", "docker", "docker.service", "docker.socket", "containerd",
                              "containerd.service")
    agent_home: str = "/opt/dtma"
    resolve_paths: bool = False
    cwd: str = "/"


@dataclass(frozen=True)
class Verdict:
    """The decision on one command string or argv.

    commands: every simple command found, in walk order (the top-level one first), each a dict
    {"argv", "executable", "wrappers", "allowed", "rule", "reason"}. When needs_shell is False, the input
    is one simple command and commands[0]["argv"] is the argv it names.

    run_argv: what to execute, exactly (None unless allowed): for one simple command its argv (a command string
    in it, as in `sh -c '...'`, regenerated from what was checked); for anything else
    ["/bin/bash", "--norc", "--noprofile", "-c", SCRIPT] where SCRIPT is regenerated from the parse tree the
    policy walked (_policy_script.py), so that the shell runs what the policy saw and nothing else.
    """

    allowed: bool
    rule: str
    reason: str
    commands: list
    needs_shell: bool
    run_argv: list = None

    def as_dict(self) -> dict:
        return {"allowed": self.allowed, "rule": self.rule, "reason": self.reason,
                "commands": self.commands, "needs_shell": self.needs_shell, "run_argv": self.run_argv}


class PolicyError(Exception):
    """A policy document is malformed; the message names the offending key."""


DEFAULT_RULE = "default_deny"


class _Deny(Exception):
    def __init__(self, rule, reason):
        super().__init__(reason)
        self.rule, self.reason = rule, reason


def _denial(category, reason):
    """The denial to raise: deny.<category>, or default_deny when category is None."""
    return _Deny("deny." + category if category else DEFAULT_RULE, reason)
