# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# The walk: bashlex parses a command string; every simple command in the tree is found (pipelines, lists,
# subshells, substitutions, nested `sh -c`), its words are computed, wrappers are peeled off, and the
# executable that really runs is judged against the policy data.

import fnmatch
import posixpath
import re
import sys

# sibling files: through the collection's path in Ansible (AnsiballZ ships what these name); in the agent's
# dtma_agent.policy package, which links the same files in under the same names, relatively
if __name__.startswith("ansible_collections."):
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_types import _denial, _Deny, Verdict
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_words import (
        _Call, _lookup_spec, _normpath, _parse_options, _parse_size, _scan_word, _Word,
    )
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_checks import _WordRules
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_script import Regenerator, SHELL_ARGV, install_heredoc_reader
else:
    from ._policy_types import _denial, _Deny, Verdict
    from ._policy_words import _Call, _lookup_spec, _normpath, _parse_options, _parse_size, _scan_word, _Word
    from ._policy_checks import _WordRules
    from ._policy_script import Regenerator, SHELL_ARGV, install_heredoc_reader


# ---------------------------------------------------------------------------------------------------------
# The evaluation of one command string or argv
# ---------------------------------------------------------------------------------------------------------
_MAX_LENGTH = 16384  # characters of one command string or argv
_MAX_DEPTH = 6  # sh -c nesting
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*\Z")  # a plain command name


_SHELL_ONLY = [[name] for name in ("cd", "export", "set", "unset", ":", "type")]  # builtins with no executable file


class _ParserStuck(BaseException):
    """bashlex ran out of its step budget (a BaseException, so that no `except Exception` in bashlex keeps it)."""


def _parse(text):
    """bashlex.parse under a step budget: a few malformed words send bashlex 0.18 into an endless loop."""
    # counts function calls only (no per-line tracing: that made every parse 4x slower); real commands need
    # at most ~45 calls per character, and the known endless loops call functions on every turn
    budget = [5000 + 100 * len(text)]
    previous = sys.gettrace()

    def count(frame, event, arg):
        budget[0] -= 1
        if budget[0] < 0:
            raise _ParserStuck("the shell parser gave up on this input")

    import bashlex  # pylint: disable=import-outside-toplevel

    install_heredoc_reader()  # bash's here-document rules, not bashlex's
    sys.settrace(count)
    try:
        return bashlex.parse(text)
    finally:
        sys.settrace(previous)


class _Walker(_WordRules):
    """Walks the parse tree of one command string (or one argv) and judges every simple command in it.

    The handlers of commands with their own argument grammar (`handler` in a spec) are methods _h_<name> of
    the subclasses in _policy_tools.py and _policy_tools_files.py; _policy.py puts them together.
    """

    def __init__(self, policy, context):
        super().__init__(policy.data, context)
        data = policy.data
        self.entries, self.denials = [], []
        self.src, self.depth, self.last_cd = "", 0, None
        self.bindings, self.loop_walks = {}, 0  # for-loop variables and their current value
        self.nested = {}  # (text, pos) of a command string (sh -c '...') -> its regenerated script
        self.units = list(data["protected_units"].items())
        self.units += [(u[:-8] if u.endswith(".service") else u, "protected_process") for u in context.protected_units]
        self.denied_exact, self.denied_globs = policy.denied_exact, policy.denied_globs

    # --- entry points -----------------------------------------------------------------------------------
    def command(self, text):
        if not isinstance(text, str) or not text.strip():
            return self._verdict_denied("deny.unparseable", "empty command")
        if len(text) > _MAX_LENGTH or "\x00" in text:
            return self._verdict_denied("deny.unparseable", "command too long or contains NUL bytes")
        trees = self._run_string(text)
        needs_shell = trees is None or self._needs_shell(trees, text) or self.entries[0]["argv"][:1] in _SHELL_ONLY
        if trees is None or self.denials:
            return self._verdict(needs_shell, None)
        try:
            if needs_shell:
                run_argv = SHELL_ARGV + [Regenerator(text, self.nested).script(trees)]
            else:
                words = [p for p in trees[0].parts if p.kind == "word"]
                run_argv = [self._run_word((text, tuple(w.pos)), v) for w, v in zip(words, self.entries[0]["argv"])]
        except _Deny as denial:
            self.denials.append((denial.rule, denial.reason))
            run_argv = None
        return self._verdict(needs_shell, run_argv)

    def argv(self, argv):
        if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, str) for a in argv):
            return self._verdict_denied("deny.unparseable", "argv must be a non-empty list of strings")
        if any("\x00" in a for a in argv) or sum(len(a) for a in argv) > _MAX_LENGTH:
            return self._verdict_denied("deny.unparseable", "argv too long or contains NUL bytes")
        entry = self._new_entry(list(argv))
        self._record(entry, lambda: self._judge(entry, [_Word(a, key=("argv", i)) for i, a in enumerate(argv)], _Call()))
        try:
            run_argv = None if self.denials else [self._run_word(("argv", i), a) for i, a in enumerate(argv)]
        except _Deny as denial:
            self.denials.append((denial.rule, denial.reason))
            run_argv = None
        return self._verdict(False, run_argv)

    def _run_word(self, key, value):
        """What runs for one argv word: itself, or the regenerated script of a command string."""
        script = self.nested.get(key, value)
        if script is None:
            raise _denial("unknowable", "a command string that differs between loop iterations cannot be run as checked")
        return script

    # --- verdicts -------------------------------------------------------------------------------------------
    def _verdict_denied(self, rule, reason):
        return Verdict(False, rule, reason, [], True)

    def _verdict(self, needs_shell, run_argv):
        specific = [d for d in self.denials if d[0].startswith("deny.")]
        if specific or self.denials:
            rule, reason = (specific or self.denials)[0]
            return Verdict(False, rule, reason, self.entries, needs_shell)
        if not self.entries:
            return Verdict(False, "deny.unparseable", "no command found", self.entries, needs_shell)
        if len(self.entries) == 1:
            return Verdict(True, self.entries[0]["rule"], self.entries[0]["reason"], self.entries, needs_shell, run_argv)
        names = ", ".join(e["executable"] for e in self.entries if e["executable"])
        return Verdict(True, "allow.all", f"all {len(self.entries)} commands are allowed: {names}",
                       self.entries, needs_shell, run_argv)

    def _new_entry(self, argv):
        entry = {"argv": argv, "executable": "", "wrappers": [], "allowed": False, "rule": "", "reason": ""}
        self.entries.append(entry)
        return entry

    def _record(self, entry, judge):
        """Run judge() for an entry and record the outcome on it; returns the denial or None."""
        try:
            category = judge()
        except _Deny as denial:
            entry.update(allowed=False, rule=denial.rule, reason=denial.reason)
            self.denials.append((denial.rule, denial.reason))
            return denial
        name = " ".join(entry["wrappers"] + [entry["executable"]]).strip() or "redirection"
        entry.update(allowed=True, rule="allow." + category, reason=f"allowed: {name} ({category})")
        return None

    def _structural(self, category, reason):
        self.denials.append(("deny." + category, reason))

    @staticmethod
    def _needs_shell(trees, text):
        """False only for one simple command whose argv is exactly its words (no shell feature used)."""
        if len(trees) != 1 or trees[0].kind != "command":
            return True
        for part in trees[0].parts:
            if part.kind != "word" or part.parts:
                return True
            if _scan_word(text[part.pos[0]:part.pos[1]])[1] & {"glob", "brace", "dollar", "subst", "unbalanced"}:
                return True
        return False

    # --- walking the parse tree ---------------------------------------------------------------------------------
    def _run_string(self, text):
        """Parse and walk a command string; returns the trees, or None when it cannot be parsed."""
        if self.depth >= _MAX_DEPTH:
            self._structural("unknowable", "commands nested too deeply")
            return None
        try:
            trees = _parse(text)
        except (Exception, _ParserStuck) as exc:  # bashlex raises ParsingError, NotImplementedError, and worse
            self._structural("unparseable", f"cannot parse the command: {exc}")
            return None
        saved, self.src = self.src, text
        self.depth += 1
        try:
            for tree in trees:
                self._walk(tree, False, ())
        finally:
            self.src = saved
            self.depth -= 1
        return trees

    def _walk(self, node, piped, upstream):
        """Judge every simple command under node; returns the executables found (for pipeline context)."""
        kind = node.kind
        if kind == "command":
            return self._simple(node, piped, upstream)
        found = []
        if kind == "pipeline":
            stage = 0
            for part in node.parts:
                if part.kind not in ("pipe", "reservedword"):
                    found += self._walk(part, piped or stage > 0, tuple(upstream) + tuple(found))
                    stage += 1
        elif kind == "list":
            union, plain_cd = None, None  # cwds to fall back to when a `cd X && ...` chain ends
            for part in node.parts:
                if part.kind != "operator":
                    self.last_cd = None
                    found += self._walk(part, piped, upstream)
                    plain_cd = self.last_cd if self._is_plain_cd(part) else None
                    continue
                if part.op == "&":
                    self._structural("background", "background jobs (&) are not allowed: they outlive the request")
                if part.op == "&&" and plain_cd:
                    union = union or list(self.cwds)
                    self.cwds = plain_cd  # what follows && runs only if cd succeeded
                elif part.op != "&&" and union is not None:
                    self.cwds, union = list(dict.fromkeys(union + self.cwds)), None
                plain_cd = None
            if union is not None:
                self.cwds = list(dict.fromkeys(union + self.cwds))
        elif kind == "compound":
            words = [p for p in node.list if p.kind == "reservedword"]
            if len(words) >= 2 and words[0].word == "(" and words[1].word == "(" and words[1].pos[0] == words[0].pos[1]:
                self._structural("unknowable", "arithmetic commands (( )) are not allowed")
            for part in node.list:
                found += self._walk(part, piped, upstream)
            for redirect in getattr(node, "redirects", []):
                self._walk_substitutions(redirect)
                entry = self._new_entry([])
                self._record(entry, lambda r=redirect: self._check_redirect(r) or "redirection")
        elif kind == "for":
            found += self._walk_for(node, piped, upstream)
        elif kind in ("while", "until"):
            self._structural("loop", f"{kind} loops are not allowed (unbounded work, fork-bomb risk); "
                                     "run the commands one by one")
            for part in node.parts:
                found += self._walk(part, piped, upstream)
        elif kind == "if":
            for part in node.parts:
                found += self._walk(part, piped, upstream)
        elif kind == "function":
            self._structural("fork_bomb", "shell function definitions are not allowed (the fork-bomb vehicle)")
            for part in node.parts:
                found += self._walk(part, piped, upstream)
        elif kind == "word":
            self._walk_substitutions(node)
        elif kind not in ("reservedword", "operator", "pipe"):
            self._structural("unparseable", f"unsupported shell construct: {kind}")
        return found

    def _walk_for(self, node, piped, upstream):
        """`for NAME in WORDS; do ...; done` over literal words: the body is judged once per value, with $NAME
        known; anything else is refused (a glob or a variable could hold anything, and so could NAME)."""
        parts, found = node.parts, []
        words = [p for p in parts[3:] if p.kind == "word"]
        body = parts[3 + len(words):]
        name = self.src[parts[1].pos[0]:parts[1].pos[1]] if len(parts) > 3 and parts[1].kind == "word" else ""
        if parts[2:3] and (parts[2].kind, getattr(parts[2], "word", "")) != ("reservedword", "in") \
                or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            self._structural("unknowable", "only `for NAME in WORD...; do ...; done` loops are allowed")
            return found
        readable = self.p["readable_variables"] + self.p["env_vars"].get("allow", []) + list(self.p["env_vars"].get("deny", {}))
        if name in self.bindings or any(fnmatch.fnmatchcase(name, p) for p in readable if re.match(r"[A-Za-z_*]", p)):
            self._structural("unknowable", f"loop variable {name} shadows a variable the policy reads")
            return found
        values = []
        for word_node in words:
            try:
                word = self._word(word_node)
            except _Deny as denial:
                self._structural(denial.rule[5:] if denial.rule.startswith("deny.") else "unknowable", denial.reason)
                return found
            if word.dynamic or word.glob:
                self._structural("unknowable", f"for loops run over literal words only, not {word.shown()} "
                                               "(list the names, or use find)")
                return found
            values.append(word.value)
        self.loop_walks += max(len(values), 1)
        if self.loop_walks > 256:
            self._structural("loop", "for loops with more than 256 iterations in all are not allowed")
            return found
        for value in values or [None]:
            if value is not None:
                self.bindings[name] = value
            try:
                for part in body:
                    found += self._walk(part, piped, upstream)
            finally:
                self.bindings.pop(name, None)
        return found

    def _is_plain_cd(self, node):
        """Is node a simple `cd DIR` run by this shell (not in a pipeline, subshell or wrapper)?"""
        words = [p for p in node.parts if p.kind == "word"] if node.kind == "command" else []
        return bool(words) and _scan_word(self.src[words[0].pos[0]:words[0].pos[1]])[0] == "cd"

    def _walk_substitutions(self, node):
        """Judge the commands inside $(...), `...`, <(...), >(...) anywhere under a word or redirect."""
        for part in getattr(node, "parts", None) or []:
            if part.kind in ("commandsubstitution", "processsubstitution"):
                self._walk(part.command, False, ())
            else:
                self._walk_substitutions(part)
        output = getattr(node, "output", None)
        if node.kind == "redirect" and hasattr(output, "kind"):
            self._walk_substitutions(output)

    def _simple(self, node, piped, upstream):
        words = [p for p in node.parts if p.kind == "word"]
        assigns = [p for p in node.parts if p.kind == "assignment"]
        redirects = [p for p in node.parts if p.kind == "redirect"]
        entry = self._new_entry([self._shown(w) for w in words])
        for part in node.parts:  # substitutions run before the command itself
            self._walk_substitutions(part)

        def judge():
            for assign in assigns:
                self._check_assignment(self._word(assign))
            for redirect in redirects:
                self._check_redirect(redirect)
            if not words:
                return "redirection" if redirects else "assignment"
            return self._judge(entry, [self._word(w) for w in words], _Call(piped, upstream))

        self._record(entry, judge)
        return [entry["executable"]] if entry["executable"] else []

    # --- judging one simple command -------------------------------------------------------------------------------
    def _command_name(self, word):
        if word.dynamic:
            raise _denial("unknowable", f"command name cannot be known statically: {word.raw}")
        value = word.value
        if value == "[":
            return value
        if "/" in value:
            directory, value = posixpath.split(word.value)
            if not word.value.startswith("/") or _normpath(directory) not in self.p["trusted_bin_dirs"]:
                raise _denial("untrusted_executable", f"executable outside the trusted bin dirs: {word.value}")
        if value in (".", ":"):
            return value
        if not _NAME_RE.match(value):
            raise _denial("unknowable", f"command name is not a plain word: {word.value}")
        return value

    def _denied_category(self, name):
        if name in self.denied_exact:
            return self.denied_exact[name]
        return next((c for pattern, c in self.denied_globs if fnmatch.fnmatchcase(name, pattern)), None)

    def _judge(self, entry, words, call):
        """Peel wrappers off, then check the executable that really runs; returns the allow category."""
        wrappers = []
        while True:
            name = self._command_name(words[0])
            entry["executable"] = name
            category = self._denied_category(name)
            if category:
                raise _denial(category, f"{name} is denied by policy ({category})")
            wrapper = self.p["wrappers"].get(name)
            if wrapper is None:
                break
            wrappers.append(name)
            entry["wrappers"] = list(wrappers)
            rest, unknown_tail = self._unwrap(name, wrapper, words[1:], call.unknown_tail)
            if rest is None:
                entry["executable"] = ""
                return "wrapper"
            words, call = rest, call.with_tail(unknown_tail)
        spec = self.p["executables"].get(name)
        if spec is None:
            raise _denial(None, f"not in policy: {name}")
        return self._check_spec(spec, name, words[1:], call)

    def _unwrap(self, name, wrapper, args, tail=False):
        """The command a wrapper runs (None when it runs none) and whether it appends unknown arguments."""
        parsed = _parse_options(args, wrapper, stop_at_operand=True)
        self._check_flags(wrapper, name, parsed)
        if parsed.names() & set(wrapper.get("lookup_flags", ())):
            return None, False  # `command -v x` runs nothing
        rest = list(parsed.operands)
        if wrapper.get("assignments"):
            while rest and not rest[0].dynamic and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", rest[0].value):
                self._check_assignment(rest.pop(0))
        for rule in wrapper.get("lead_operands", ()):
            if rest:
                if rest[0].dynamic or rest[0].glob:  # `timeout {5,rm,-rf,/x} true`, `timeout /tmp/* true`
                    raise _denial("unknowable", f"{name} {rest[0].shown()}: may expand into several words")
                self._check_path(rest.pop(0), rule, name)
        shell_flags = wrapper.get("shell_flags", ())
        strings = parsed.values(*shell_flags)
        if rest and rest[0].value in shell_flags:
            strings += rest[1:2]
            rest = []
        if strings:
            self._nested_string(strings[0], f"{name} -c")
            return None, False
        if not rest:
            if tail:  # `... | xargs timeout 5`: the command itself would come from stdin
                raise _denial("unknowable", f"{name} without a command behind xargs runs a command read from stdin")
            if wrapper.get("no_command", "allow") != "allow":
                raise _denial(wrapper["no_command"], f"{name} without a command is not allowed ({wrapper['no_command']})")
            return None, False
        replace = parsed.values(*wrapper.get("replace_flags", ()))
        markers = [w.value for w in replace] + (["{}"] if parsed.names() & set(wrapper.get("replace_flags", ())) else [])
        if markers:  # xargs -I{}: the marked words come from stdin
            rest = [_Word(w.value, w.raw, True) if any(m and m in w.value for m in markers) else w for w in rest]
        return rest, bool(wrapper.get("appends_unknown_args"))

    def _resolve_alias(self, spec):
        hops = 0
        while "same_as" in spec:
            hops += 1
            if hops > 8:
                raise _denial("unknowable", "policy aliases loop")
            spec = _lookup_spec(self.p["executables"], spec["same_as"]) or {}
        return spec

    def _check_spec(self, spec, label, args, call):
        spec = self._resolve_alias(spec)
        forms = spec.get("forms")
        if forms is not None:
            values = [w.value for w in args]
            form = next((f for f in forms if values[:len(f)] == f and not any(w.dynamic for w in args[:len(f)])), None)
            if form is None:
                allowed = " | ".join(" ".join(f) for f in forms)
                raise self._code_denial(label, call, spec.get("deny_as", "code_execution"), f"{label} may only run: {allowed}")
            args = args[len(form):]
        if "subcommands" not in spec and (call.unknown_tail or any(w.dynamic for w in args)):
            if not spec.get("unknown_args") and spec.get("handler") != "kill":  # kill: $(pidof NAME)
                shown = next((w.raw for w in args if w.dynamic), "arguments read from stdin (xargs)")
                raise _denial("unknowable", f"{label}: argument cannot be known statically: {shown}")
        handler = spec.get("handler")
        if handler:
            return getattr(self, "_h_" + handler)(spec, label, args, call)
        return self._generic(spec, label, args, call)

    def _code_denial(self, label, call, category, reason):
        """The denial of a shell/interpreter; code arriving on stdin is named for where it comes from."""
        if call.piped:
            source = next((u for u in call.upstream if u in self.p["downloaders"]), None)
            if source:
                return _denial("download_execute", f"{label} would run code downloaded by {source}")
            return _denial("pipe_to_shell", f"{label} would run code piped into it")
        return _denial(category, reason)

    def _check_flags(self, spec, label, parsed):
        if parsed.spread() and not spec.get("unknown_args"):
            raise _denial("unknowable", f"{label}: the value of {parsed.spread()[0]} may expand into several words")
        deny = spec.get("deny_flags", {})
        allow = spec.get("allow_flags")
        path_flags = spec.get("path_flags", {})
        for name, value in parsed.flags:
            if name in deny:
                raise _denial(deny[name], f"{label}: option {name} is not allowed")
            if allow is not None and name not in allow:
                raise _denial(spec.get("deny_as"), f"{label}: option not in policy: {name}")
            if value is not None and name in path_flags and value.value != "-":
                self._check_path(value, path_flags[name], f"{label} {name}", spec.get("deny_as", "fs_write"))
            if value is not None and name in spec.get("size_flags", ()):
                size = _parse_size(value.value)
                if size is None or size > self.p["disk_fill_limit_bytes"]:
                    raise _denial("disk_fill", f"{label}: size too large or not understood: {value.value}")

    def _generic(self, spec, label, args, call):
        parsed = _parse_options(args, spec, stop_at_operand="subcommands" in spec)
        self._check_flags(spec, label, parsed)
        category = spec.get("category", "command")
        if "subcommands" in spec:
            if not parsed.operands:
                if call.unknown_tail:  # `... | xargs docker`: the subcommand would come from stdin
                    raise _denial("unknowable", f"{label} without a subcommand behind xargs runs one read from stdin")
                return category
            sub = parsed.operands[0]
            if sub.dynamic:
                raise _denial("unknowable", f"{label}: subcommand cannot be known statically: {sub.raw}")
            denied = spec.get("deny_subcommands", {}).get(sub.value)
            if denied:
                raise _denial(denied, f"{label} {sub.value} is not allowed")
            sub_spec = spec["subcommands"].get(sub.value)
            if sub_spec is None:
                raise _denial(None, f"not in policy: {label} {sub.value}")
            sub_spec = dict(self._resolve_alias(sub_spec))
            sub_spec.setdefault("category", category)
            return self._check_spec(sub_spec, f"{label} {sub.value}", parsed.operands[1:], call)
        self._check_operands(spec, label, parsed.operands)
        self._check_operand_paths(spec, label, parsed)
        return category

    def _check_operands(self, spec, label, operands):
        deny_as = spec.get("deny_as")
        if "max_operands" in spec and len(operands) > spec["max_operands"]:
            raise _denial(deny_as, f"{label}: too many operands ({len(operands)})")
        for word in operands:
            if word.dynamic:
                continue
            if "operand_regex" in spec and not re.fullmatch(spec["operand_regex"], word.value):
                raise _denial(deny_as, f"{label}: operand not allowed: {word.value}")
            for regex, category in spec.get("deny_operand_regex", {}).items():
                if re.fullmatch(regex, word.value):
                    raise _denial(category, f"{label}: operand not allowed: {word.value}")
            if "number_limit" in spec:
                try:
                    too_big = not abs(float(word.value)) <= spec["number_limit"]  # inf and nan too
                except ValueError:
                    too_big = False  # not a number
                if too_big:
                    raise _denial(deny_as or "disk_fill", f"{label}: number too large: {word.value}")

    def _check_operand_paths(self, spec, label, parsed):
        rule, operands = spec.get("path_rule", "none"), list(parsed.operands)
        deny_as = spec.get("deny_as", "fs_write")
        names = parsed.names()
        if isinstance(rule, list):
            if len(operands) > len(rule):
                raise _denial(spec.get("deny_as"), f"{label}: too many operands ({len(operands)})")
            pairs = list(zip(operands, rule))
        else:
            if rule == "read" and names & set(spec.get("recursive_flags", ())):
                rule = "read_tree"
            if names & set(spec.get("read_only_flags", ())):
                rule = "read"
            if spec.get("pattern_operand") and not names & set(spec.get("pattern_flags", ())):
                operands = operands[1:]
            pairs = [(w, rule) for w in operands]
        for word, word_rule in pairs:
            if word.value != "-" or word.dynamic:
                self._check_path(word, word_rule, label, deny_as)
        if names & set(spec.get("deref_flags", ())):  # grep -R, diff -r: the walk follows symbolic links
            for word in operands or [_Word(".")]:
                self._check_no_deref(word, label)

    def _nested_string(self, word, label):
        """Judge a command string another command will run (sh -c, flock -c) as if typed here."""
        if word.dynamic:
            raise _denial("unknowable", f"{label}: command string cannot be known statically: {word.raw}")
        before = len(self.denials)
        trees = self._run_string(word.value)
        if len(self.denials) > before:
            rule, reason = self.denials[before]
            raise _Deny(rule, f"{label}: {reason}")
        # what runs is the string regenerated from what was checked (for a shell that may not be bash)
        if word.key is None:
            raise _denial("unknowable", f"{label}: the command string must be a word of its own")
        try:
            script = Regenerator(word.value, self.nested, posix=label.split()[-2:-1] != ["bash"]).script(trees)
        except _Deny as denial:
            raise _Deny(denial.rule, f"{label}: {denial.reason}") from None
        self.nested[word.key] = script if self.nested.get(word.key, script) == script else None

    def _nested_argv(self, words, label, cwds=None):
        """Judge an argv another command will run without a shell (docker exec, find -exec)."""
        entry = self._new_entry([w.shown() for w in words])
        saved = self.cwds
        if cwds is not None:
            self.cwds = cwds
        try:
            denial = self._record(entry, lambda: self._judge(entry, words, _Call()))
        finally:
            self.cwds = saved
        if denial:
            raise _Deny(denial.rule, f"{label}: {denial.reason}")
