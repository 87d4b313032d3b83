# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# The command safety policy of DTMA, pure Python, used by the agent (dtma_agent.policy) and by the Ansible
# modules (as collection module_utils). This file is its public API: POLICY_SCHEMA, loading and validating a
# policy document, Policy.check_command/check_argv and the types they return. The rest, by concern:
#   _policy_types.py                PolicyContext, Verdict, PolicyError, the denial every check raises
#   _policy_default.py              DEFAULT_POLICY, the shipped policy as data
#   _policy_default_executables.py  its table of allowed executables
#   _policy_words.py                quote removal, globs, option parsing
#   _policy_paths.py                path rules: cwd, secrets, scratch dirs, protected paths
#   _policy_checks.py               each word's value (quotes, loop variables), expansions, redirections
#   _policy_walk.py                 parsing and walking the tree, for loops, wrappers, the generic argument checks
#   _policy_script.py               what runs: the script regenerated from the checked tree (run_argv), and
#                                   bash's here-document rules in place of bashlex's
#   _policy_tools.py                handlers: shells, builtins, kill, ps, systemctl, ip, curl/wget, docker
#                                   (docker subcommands: the table in _docker_access.py, shared with the
#                                   agent's filtered Docker API)
#   _policy_tools_files.py          handlers: awk, sed, jq, find, tar, dd, cp/mv, chmod/chown
# The agent's dtma_agent/policy/ holds a symlink to each of these files (engine.py is this one); each file
# imports its siblings by the collection path under Ansible and relatively inside the agent.
#
# How a command is judged:
#   1. bashlex parses the string (bash's grammar; anything it cannot parse is denied).
#   2. Every simple command is found: in pipelines, lists, subshells, groups, $(...), `...`, <(...), and
#      recursively inside `sh -c '...'`, `docker exec ctr ...`, `find -exec ...`, `flock -c '...'`.
#   3. Each word's value is computed by the policy's own quote-aware scanner; a word whose value depends on
#      the runtime (variables, substitutions, brace expansion, a leading glob) is "dynamic": never a command
#      name, never a checked path, never an argument of a command whose arguments matter.
#   4. Wrappers (env, timeout, nice, xargs, ...) are peeled off to reach the executable that really runs.
#   5. The executable is looked up in the policy data: deny_executables first (deny wins), then executables
#      (an argument grammar per command); anything else is `not in policy: <name>` (default deny).
#   6. Paths are normalised (and, on the agent, resolved with realpath) and checked: reads never touch a
#      secret, writes stay inside the scratch dirs, protected paths name the category of a denial.
#   7. What runs is regenerated from what was checked (Verdict.run_argv): a compound command runs as
#      `bash -c SCRIPT` with SCRIPT emitted from the parse tree, never the string as typed.

import importlib.util
import json
import os
import re

# sibling files: through the collection's path in Ansible (AnsiballZ ships what these name); in the agent's
# dtma_agent.policy package, which links the same files in under the same names, relatively.
# _globs_overlap stays importable from here (the tests use it).
if __name__.startswith("ansible_collections."):
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_types import (
        DEFAULT_RULE, PolicyContext, PolicyError, Verdict,
    )
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_default import DEFAULT_POLICY
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_words import _globs_overlap, _lookup_spec  # noqa: F401 pylint: disable=unused-import
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_tools import _SystemTools
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_tools_files import _FileTools
else:
    from ._policy_types import DEFAULT_RULE, PolicyContext, PolicyError, Verdict
    from ._policy_default import DEFAULT_POLICY
    from ._policy_words import _globs_overlap, _lookup_spec  # noqa: F401 pylint: disable=unused-import
    from ._policy_tools import _SystemTools
    from ._policy_tools_files import _FileTools

__all__ = ["BASHLEX_IMPORT_ERROR", "DEFAULT_POLICY", "DEFAULT_RULE", "HAS_BASHLEX", "HAS_YAML", "POLICY_SCHEMA", "Policy",
           "PolicyContext", "PolicyError", "Verdict", "default_policy", "dump_default_policy", "load_policy"]

# bashlex is imported on first parse (about 5 MB an agent that never runs a command does not need)
HAS_BASHLEX = importlib.util.find_spec("bashlex") is not None
BASHLEX_IMPORT_ERROR = None if HAS_BASHLEX else "ModuleNotFoundError: No module named 'bashlex'"

# PyYAML likewise, on reading a .yml/.yaml policy file (the agent's start-up does not pay for it otherwise)
HAS_YAML = importlib.util.find_spec("yaml") is not None


POLICY_SCHEMA = """\
A policy is a dict (or a JSON/YAML file holding one). Keys you omit inherit the shipped default,
except executables, deny_executables and wrappers, which default to empty (so a custom policy allows
only what it lists). Paths and names are fnmatch patterns whose `*` also crosses `/`; a path pattern
covers the path and everything below it.

version                 1
description             free text
scratch_dirs            dirs where writes are allowed (the context adds the agent's own)
trusted_bin_dirs        an executable given as a path must live in one of these
write_ok_paths          write targets that are always fine (/dev/null, ...)
secret_paths            never read (the context adds the agent's env/token files)
secret_exceptions       paths matching these are not secret (*.pub)
endless_sources         devices that never end (/dev/zero): reading them is disk filling
protected_paths         {category: [paths]}: names the category of a denied write (first match wins)
protected_units         {unit pattern: category}: systemd units that are never stopped or restarted
protected_process_names process names (comm) never signalled, looked up live when resolve_paths is on
env_vars                {"allow": [names], "deny": {name: category}}: VAR=value assignments
readable_variables      $VARIABLES a command may expand (anything else may be a secret of the agent)
downloaders             executables whose output piped into a shell is download-and-execute
deny_substrings         {substring: category}: no word may contain these (/dev/tcp/)
disk_fill_limit_bytes   the most a dd/truncate may write
loopback_hosts          host names curl/wget may reach (plus every loopback IP)
loopback_denied_ports   {port: category}: loopback ports never reached (a Docker API on TCP)
deny_executables        {name: category}: always denied, checked before anything else
wrappers                {name: wrapper spec}: commands that run another command (env, timeout, ...)
executables             {name: spec}: what is allowed, and how its arguments are checked

A spec (executables, subcommands) may hold:
  category            id of the allow rule: allow.<category>
  handler             special argument grammar: shell docker_run docker_exec docker_cp systemctl service
                      kill ip awk sed find tar curl wget dd copy chmod chown jq cd shell_vars ps docker
                      (docker: the subcommand must be in the shared Docker operations table, _docker_access.py)
  same_as             "docker ps": use that spec
  forms               [[arg, ...]]: argv must start with one of these (python3 -m json.tool)
  value_flags         options that take a value; opt_value_flags: options whose value is only attached
  deny_flags          {option: category}; allow_flags: [options] (others are denied)
  path_flags          {option: path rule} for option values
  path_rule           path rule for every operand, or a list of rules, one per operand
  recursive_flags     options that make a read rule read_tree; read_only_flags: make a write rule read
  deref_flags         options that make a recursive walk follow symbolic links (grep -R): the operands may not
                      be in or above a scratch dir, where planted links lead anywhere
  pattern_operand     the first operand is a pattern, not a path (unless a pattern_flags option is given)
  max_operands, operand_regex, deny_operand_regex {regex: category}, number_limit, size_flags
  unknown_args        true when no argument can do harm (dynamic and xargs arguments are then fine)
  deny_as             category for denials of this command (default fs_write / default_deny)
  subcommands         {name: spec}; deny_subcommands {name: category}
  handler keys        read_verbs lifecycle_verbs deny_verbs (systemctl), read_actions (ip),
                      host_namespace_flags security_opt_allow bind_source_rule (docker_run),
                      root_users (docker_exec), source_rule (copy)
A wrapper spec may hold value_flags, opt_value_flags, deny_flags, path_flags and:
  lead_operands       path rules of operands before the command (timeout DURATION: "none")
  assignments         NAME=value operands come before the command (env)
  no_command          category denying the wrapper alone ("secrets" for env); default: allowed
  appends_unknown_args, replace_flags (xargs); shell_flags (flock -c STRING); lookup_flags (command -v)
Path rules: none (not a path), list (names and metadata only), read, read_tree (recursive read),
scratch (strictly inside a scratch dir), scratch_dir (a scratch dir or inside one).
"""


# ---------------------------------------------------------------------------------------------------------
# Policy documents: validation and loading
# ---------------------------------------------------------------------------------------------------------
_PATH_RULES = ("none", "list", "read", "read_tree", "scratch", "scratch_dir")
_HANDLERS_NAMES = ("shell", "docker_run", "docker_exec", "docker_cp", "systemctl", "service", "kill", "ip", "awk",
                   "sed", "find", "tar", "curl", "wget", "dd", "copy", "chmod", "chown", "jq", "cd", "shell_vars", "ps",
                   "docker")
_CATEGORY_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
# value kinds used by the key tables below
_STR, _INT, _BOOL, _STRS, _CATS, _RULE, _RULES_MAP, _REGEX, _REGEX_CATS = (
    "string", "integer", "boolean", "list of strings", "map of name to category", "path rule",
    "map of option to path rule", "regular expression", "map of regular expression to category")
_SPEC_KEYS = {
    "category": _STR, "handler": _STR, "same_as": _STR, "forms": "list of lists of strings",
    "value_flags": _STRS, "opt_value_flags": _STRS, "deny_flags": _CATS, "allow_flags": _STRS,
    "path_flags": _RULES_MAP, "path_rule": "path rule or list of path rules", "recursive_flags": _STRS,
    "read_only_flags": _STRS, "pattern_operand": _BOOL, "pattern_flags": _STRS, "max_operands": _INT,
    "operand_regex": _REGEX, "deny_operand_regex": _REGEX_CATS, "number_limit": _INT, "size_flags": _STRS,
    "unknown_args": _BOOL, "deny_as": _STR, "subcommands": "map of name to spec", "deny_subcommands": _CATS,
    "read_verbs": _STRS, "lifecycle_verbs": _STRS, "deny_verbs": _CATS, "read_actions": _STRS,
    "host_namespace_flags": _STRS, "security_opt_allow": _STRS, "bind_source_rule": _RULE, "root_users": _STRS,
    "source_rule": _RULE, "deref_flags": _STRS,
}
_WRAPPER_KEYS = {
    "value_flags": _STRS, "opt_value_flags": _STRS, "deny_flags": _CATS, "path_flags": _RULES_MAP,
    "lead_operands": "list of path rules", "assignments": _BOOL, "no_command": _STR,
    "appends_unknown_args": _BOOL, "replace_flags": _STRS, "shell_flags": _STRS, "lookup_flags": _STRS,
}
_TOP_KEYS = {
    "version": _INT, "description": _STR, "scratch_dirs": _STRS, "trusted_bin_dirs": _STRS,
    "write_ok_paths": _STRS, "secret_paths": _STRS, "secret_exceptions": _STRS, "endless_sources": _STRS,
    "protected_paths": "map of category to list of paths", "protected_units": _CATS,
    "protected_process_names": _STRS, "env_vars": "map with allow (list) and deny (map)",
    "readable_variables": _STRS, "downloaders": _STRS, "deny_substrings": _CATS, "disk_fill_limit_bytes": _INT,
    "loopback_hosts": _STRS, "loopback_denied_ports": _CATS, "deny_executables": _CATS, "wrappers": "map of name to wrapper spec",
    "executables": "map of name to spec",
}
# a custom policy lists its own executables; the safety lists it omits are inherited from the default
_NOT_INHERITED = ("executables", "deny_executables", "wrappers")


def _bad(where, message):
    raise PolicyError(f"{where}: {message}")


def _check_value(where, kind, value):
    """Check one value against a kind from the key tables (raises PolicyError naming `where`)."""
    def is_strs(v):
        return isinstance(v, list) and all(isinstance(x, str) for x in v)

    def category(v, at):
        if not isinstance(v, str) or not _CATEGORY_RE.match(v):
            _bad(at, f"expected a category name (lowercase, digits, _), got {v!r}")

    def rule(v, at):
        if v not in _PATH_RULES:
            _bad(at, f"unknown path rule {v!r} (expected one of {', '.join(_PATH_RULES)})")

    def regex(v, at):
        try:
            re.compile(v)
        except (re.error, TypeError) as exc:
            _bad(at, f"invalid regular expression {v!r}: {exc}")

    if kind in (_STR, _INT, _BOOL):
        expected = {_STR: str, _INT: int, _BOOL: bool}[kind]
        if not isinstance(value, expected) or (kind == _INT and isinstance(value, bool)):
            _bad(where, f"expected a {kind}, got {type(value).__name__}")
    elif kind in (_STRS, "list of path rules"):
        if not is_strs(value):
            _bad(where, f"expected a {kind}")
        if kind == "list of path rules":
            for i, v in enumerate(value):
                rule(v, f"{where}[{i}]")
    elif kind in (_CATS, _RULES_MAP, _REGEX_CATS):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            _bad(where, f"expected a {kind}")
        for k, v in value.items():
            if kind == _RULES_MAP:
                rule(v, f"{where}.{k}")
            else:
                category(v, f"{where}.{k}")
            if kind == _REGEX_CATS:
                regex(k, f"{where}.{k}")
    elif kind == _RULE:
        rule(value, where)
    elif kind == _REGEX:
        regex(value, where)
    elif kind == "path rule or list of path rules":
        for i, v in enumerate(value if isinstance(value, list) else [value]):
            rule(v, f"{where}[{i}]" if isinstance(value, list) else where)
    elif kind == "list of lists of strings":
        if not isinstance(value, list) or not all(is_strs(v) for v in value):
            _bad(where, f"expected a {kind}")
    elif kind == "map of category to list of paths":
        if not isinstance(value, dict):
            _bad(where, f"expected a {kind}")
        for k, v in value.items():
            category(k, f"{where}.{k}")
            if not is_strs(v):
                _bad(f"{where}.{k}", "expected a list of strings")
    elif kind == "map with allow (list) and deny (map)":
        if not isinstance(value, dict) or set(value) - {"allow", "deny"}:
            _bad(where, f"expected a {kind}")
        _check_value(f"{where}.allow", _STRS, value.get("allow", []))
        _check_value(f"{where}.deny", _CATS, value.get("deny", {}))


def _check_spec(where, spec, keys):
    if not isinstance(spec, dict):
        _bad(where, "expected a map")
    for key, value in spec.items():
        if key not in keys:
            _bad(f"{where}.{key}", "unknown key")
        if key == "subcommands":
            if not isinstance(value, dict):
                _bad(f"{where}.{key}", "expected a map of name to spec")
            for name, sub in value.items():
                _check_spec(f"{where}.subcommands.{name}", sub, keys)
        else:
            _check_value(f"{where}.{key}", keys[key], value)
    for key in ("category", "deny_as", "no_command"):
        if key in spec and not _CATEGORY_RE.match(spec[key]):
            _bad(f"{where}.{key}", f"expected a category name (lowercase, digits, _), got {spec[key]!r}")
    if "handler" in spec and spec["handler"] not in _HANDLERS_NAMES:
        _bad(f"{where}.handler", f"unknown handler {spec['handler']!r} (expected one of {', '.join(_HANDLERS_NAMES)})")


def _validate(data):
    """Validate a policy document; return it merged with the inherited defaults (a private deep copy)."""
    if not isinstance(data, dict):
        raise PolicyError("policy: expected a map at the top level")
    data = json.loads(json.dumps(data))
    for key, value in data.items():
        if key not in _TOP_KEYS:
            _bad(f"policy.{key}", "unknown key")
        if key == "executables":
            if not isinstance(value, dict):
                _bad("policy.executables", "expected a map of name to spec")
            for name, spec in value.items():
                _check_spec(f"policy.executables.{name}", spec, _SPEC_KEYS)
        elif key == "wrappers":
            if not isinstance(value, dict):
                _bad("policy.wrappers", "expected a map of name to wrapper spec")
            for name, spec in value.items():
                _check_spec(f"policy.wrappers.{name}", spec, _WRAPPER_KEYS)
        else:
            _check_value(f"policy.{key}", _TOP_KEYS[key], value)
    if data.get("version") != 1:
        _bad("policy.version", f"expected 1, got {data.get('version')!r}")
    merged = {k: v for k, v in json.loads(json.dumps(DEFAULT_POLICY)).items() if k not in _NOT_INHERITED}
    merged.update({k: {} for k in _NOT_INHERITED})
    merged.update(data)

    def check_aliases(where, spec):
        if "same_as" in spec and _lookup_spec(merged["executables"], spec["same_as"]) is None:
            _bad(f"{where}.same_as", f"{spec['same_as']!r} names no spec in executables")
        for name, sub in spec.get("subcommands", {}).items():
            check_aliases(f"{where}.subcommands.{name}", sub)

    for name, spec in merged["executables"].items():
        check_aliases(f"policy.executables.{name}", spec)
    return merged


def load_policy(source) -> "Policy":
    """A Policy from a dict, or from a JSON or YAML file path. Raises PolicyError naming the bad key."""
    if isinstance(source, Policy):
        return source
    if isinstance(source, dict):
        return Policy(source)
    if not isinstance(source, (str, os.PathLike)):
        raise PolicyError(f"policy: expected a map or a file path, got {type(source).__name__}")
    path = os.fspath(source)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from exc
    try:
        if path.endswith((".yml", ".yaml")):
            if not HAS_YAML:
                raise PolicyError(f"{path}: PyYAML is not installed; write the policy as JSON")
            import yaml  # pylint: disable=import-outside-toplevel
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except PolicyError:
        raise
    except Exception as exc:  # json/yaml syntax errors of any flavour
        raise PolicyError(f"{path}: not valid {'YAML' if path.endswith(('.yml', '.yaml')) else 'JSON'}: {exc}") from exc
    try:
        return Policy(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from exc


def dump_default_policy() -> str:
    """DEFAULT_POLICY as pretty JSON (what `dtma-agent --dump-default-policy` prints)."""
    return json.dumps(DEFAULT_POLICY, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------------------
class _Evaluation(_SystemTools, _FileTools):
    """One check: the walk (_policy_walk.py) with every command handler (_policy_tools*.py)."""


class Policy:
    """A validated policy document. check_command/check_argv never raise; they return a Verdict."""

    def __init__(self, data):
        self.data = _validate(data)
        # split once per policy, not per check: the split was half the cost of checking a short command
        deny = self.data["deny_executables"]
        self.denied_exact = {k: v for k, v in deny.items() if not any(c in k for c in "*?[")}
        self.denied_globs = [(k, v) for k, v in deny.items() if k not in self.denied_exact]

    def check_command(self, command: str, context: PolicyContext = PolicyContext()) -> Verdict:
        """Judge a shell command string (as /bin/sh -c would run it)."""
        if not HAS_BASHLEX:
            return Verdict(False, "deny.unparseable", "bashlex is not installed: commands cannot be parsed", [], True)
        return _Evaluation(self, context).command(command)

    def check_argv(self, argv: list, context: PolicyContext = PolicyContext()) -> Verdict:
        """Judge an argv that runs without a shell (no shell semantics); wrappers are still looked through."""
        return _Evaluation(self, context).argv(argv)


_DEFAULT = []


def default_policy() -> Policy:
    """The shipped policy (validated once, then shared: a Policy is never mutated)."""
    if not _DEFAULT:
        _DEFAULT.append(Policy(DEFAULT_POLICY))
    return _DEFAULT[0]
