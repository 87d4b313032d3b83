# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# The words of the parse tree: each word's value as the shell computes it (quotes, loop variables), and the
# checks on what a word can do by itself: expansions, assignments, redirections.

import fnmatch
import re

# sibling files: through the collection's path in Ansible (AnsiballZ ships what these name); in the agent's
# dtma_agent.policy package, which links the same files in under the same names, relatively
if __name__.startswith("ansible_collections."):
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_types import _denial
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_words import _scan_word, _Word
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_paths import _PathRules
else:
    from ._policy_types import _denial
    from ._policy_words import _scan_word, _Word
    from ._policy_paths import _PathRules


class _WordRules(_PathRules):
    """Words and their own checks; the walk (_policy_walk.py) sets src (the text parsed) and bindings."""

    src = ""
    bindings = {}

    def _shown(self, node):
        raw = self.src[node.pos[0]:node.pos[1]]
        value, flags = _scan_word(raw)
        return raw if node.parts or flags & {"dollar", "subst"} else value

    def _word(self, node):
        """A _Word from a bashlex word/assignment node; denies what the shell would do but the parser hides."""
        start = node.pos[0]
        raw = self.src[start:node.pos[1]]
        parts = node.parts or []
        masked = raw
        for part in parts:  # substitutions the parser understood are judged separately
            if part.kind in ("commandsubstitution", "processsubstitution"):
                a, b = part.pos[0] - start, part.pos[1] - start
                masked = masked[:a] + "_" * (b - a) + masked[b:]
        params = [p for p in parts if p.kind == "parameter"]
        bound = [p for p in params if p.value in self.bindings and re.fullmatch(
            r"\$(\{%s\}|%s)" % (p.value, p.value), raw[p.pos[0] - start:p.pos[1] - start])]
        for param in sorted(bound, key=lambda p: -p.pos[0]):  # a loop variable's value, as the shell inserts it
            a, b = param.pos[0] - start, param.pos[1] - start
            value = self.bindings[param.value]
            if "unbalanced" in _scan_word(masked[:a])[1]:  # inside "...": the value as it is
                text = re.sub(r'([\\$`"])', r"\\\1", value)
            elif value and not re.search(r"[\s*?\[]", value):  # unquoted: no splitting or globbing happens
                text = re.sub(r"([^A-Za-z0-9_])", r"\\\1", value)
            else:
                raise _denial("unknowable", f"${param.value} is unquoted and its value {value!r} would be split or globbed")
            masked = masked[:a] + text + masked[b:]
        value, flags = _scan_word(masked)
        if "subst" in flags or "unbalanced" in flags:
            raise _denial("unknowable", f"shell expansion the policy cannot follow: {raw}")
        params = [p for p in params if p not in bound]
        for param in params:
            self._check_parameter(param)
        substituted = any(p.kind in ("commandsubstitution", "processsubstitution") for p in parts)
        dynamic = bool(params or substituted or flags & {"dollar", "brace", "lead_glob"})
        word = _Word(raw if dynamic else value, raw, dynamic, "glob" in flags, any(p.kind == "tilde" for p in parts),
                     key=(self.src, tuple(node.pos)))
        self._check_substrings(word)
        return word

    def _check_parameter(self, node):
        value = getattr(node, "value", None)
        if value is None:
            return  # $'...' or $"...": the value is unknown, but no variable is read
        match = re.match(r"(#?)([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!_-])", value)
        if value.startswith("!") or not match:
            raise _denial("unknowable", f"indirect or unusual expansion: ${{{value}}}")
        name, rest = match.group(2), value[match.end():]
        if rest.startswith((":=", "=")):
            raise _denial("unknowable", f"assigning expansion ${{{value}}} changes variables")
        # patterns like LC_* match names; `?`, `$` and `#` name those special parameters only
        if not any(fnmatch.fnmatchcase(name, pattern) if re.match(r"[A-Za-z_*]", pattern) else name == pattern
                   for pattern in self.p["readable_variables"]):
            if re.fullmatch(r"[0-9@*_-]+", name):
                raise _denial("unknowable", f"${name} cannot be known statically")
            raise _denial("secrets", f"expanding ${name} could reveal the agent's environment")

    def _check_substrings(self, word):
        value = re.sub("/+", "/", word.value)
        for needle, category in self.p["deny_substrings"].items():
            if needle in value:
                raise _denial(category, f"{needle} is not allowed: {word.shown()}")

    def _check_assignment(self, word):
        name = word.value.split("=", 1)[0].rstrip("+")
        for pattern, category in self.p["env_vars"].get("deny", {}).items():
            if fnmatch.fnmatchcase(name, pattern):
                raise _denial(category, f"setting {name} is not allowed")
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.p["env_vars"].get("allow", [])):
            raise _denial(None, f"environment variable not in policy: {name}")

    def _check_redirect(self, node):
        kind, target = node.type, node.output
        if not hasattr(target, "kind"):
            return  # 2>&1, >&-: duplicating or closing descriptors
        if kind in ("<<", "<<-"):
            heredoc = getattr(node, "heredoc", None)
            if heredoc is None or not hasattr(heredoc, "quoted"):
                raise _denial("unknowable", "here-document not read by the shell's rules")
            if not heredoc.quoted and ("$" in heredoc.value or "`" in heredoc.value):
                raise _denial("unknowable", "here-document with expansions (quote the delimiter)")
            return
        word = self._word(target)
        if kind == "<<<":
            return  # a here-string is data on stdin
        if "<" in kind:
            self._check_path(word, "read", "redirect")
        if ">" in kind or kind == "<>":
            self._check_path(word, "scratch", "redirect", "fs_write")
