# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# Handlers of text and file tools: awk, sed, jq, find, tar, dd, cp/mv, chmod/chown, and the small grammars
# they need (tar's old-style options, awk programs, sed scripts).

import posixpath
import re

# sibling files: through the collection's path in Ansible (AnsiballZ ships what these name); in the agent's
# dtma_agent.policy package, which links the same files in under the same names, relatively
if __name__.startswith("ansible_collections."):
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_types import _denial
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_words import (
        _covers, _parse_options, _parse_size, _Word,
    )
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_walk import _Walker
else:
    from ._policy_types import _denial
    from ._policy_words import _covers, _parse_options, _parse_size, _Word
    from ._policy_walk import _Walker


class _FileTools(_Walker):
    """awk, sed, jq, find, tar, dd, cp/mv, chmod, chown."""

    def _h_awk(self, spec, label, args, call):
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        programs, files = parsed.values("-e", "--source"), list(parsed.operands)
        if not programs:  # no -e: the first operand is the program
            if not files:
                raise _denial(None, f"{label}: no program given")
            programs = [files.pop(0)]
        for program in programs:
            problem = _awk_problem(program.value)
            if problem:
                raise _denial(problem[0], f"{label}: {problem[1]}")
        for word in files:
            if not re.match(r"[A-Za-z_][A-Za-z0-9_]*=", word.value) and word.value != "-":
                self._check_path(word, "read", label)
        return spec.get("category", "read")

    def _h_sed(self, spec, label, args, call):
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        scripts, files = parsed.values("-e", "--expression"), list(parsed.operands)
        if not scripts:
            if not files:
                raise _denial(None, f"{label}: no script given")
            scripts, files = [files[0]], files[1:]
        for script in scripts:
            try:
                reads, writes = _sed_files(script.value)
            except ValueError as exc:
                raise _denial(exc.args[0], f"{label}: {exc.args[1]}") from None
            for name in reads:
                self._check_path(script.part(name), "read", f"{label} r")
            for name in writes:
                if name not in ("/dev/stdout", "/dev/stderr"):
                    self._check_path(script.part(name), "scratch", f"{label} w", "fs_write")
        in_place = parsed.names() & {"-i", "--in-place"}
        for word in files:
            if word.value != "-":
                self._check_path(word, "scratch" if in_place else "read", label, "fs_write")
        return spec.get("category", "read")

    def _h_jq(self, spec, label, args, call):
        operands, i = [], 0
        as_args = any(w.value in ("--args", "--jsonargs") for w in args)
        while i < len(args):
            value = args[i].value
            if value in ("--arg", "--argjson"):
                i += 3
                continue
            if value in ("--slurpfile", "--rawfile"):
                if i + 2 < len(args):
                    self._check_path(args[i + 2], "read", f"{label} {value}")
                i += 3
                continue
            if value in ("-f", "--from-file"):
                raise _denial("unknowable", f"{label}: a program from a file cannot be checked")
            if value == "-L" and i + 1 < len(args):  # a module dir: `import "x" as $d;` reads x.json from it
                self._check_path(args[i + 1], "read_tree", f"{label} -L")
            if value in ("-L", "--indent"):
                i += 2
                continue
            if value.startswith("-") and value != "-":
                i += 1
                continue
            operands.append(args[i])
            i += 1
        if operands and re.search(r"\$ENV\b|(?<![\w$.])env\b", operands[0].value):
            raise _denial("secrets", f"{label}: $ENV/env exposes the agent's environment")
        for word in [] if as_args else operands[1:]:
            self._check_path(word, "read", label)
        return spec.get("category", "read")

    def _h_find(self, spec, label, args, call):
        i = 0
        while i < len(args) and (args[i].value in ("-H", "-L", "-P") or args[i].value.startswith(("-D", "-O"))):
            i += 2 if args[i].value == "-D" else 1
        starts = []
        while i < len(args) and not args[i].value.startswith(("-", "(", "!", ")", ",")):
            starts.append(args[i])
            i += 1
        starts = starts or [_Word(".")]
        follows = any(w.value == "-L" for w in args[:i]) or any(w.value == "-follow" for w in args[i:])
        acts = {"-exec", "-ok", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls"} & {w.value for w in args[i:]}
        if follows and acts:  # -L with actions: they reach what the links point to
            for word in starts:
                self._check_no_deref(word, f"{label} -L {sorted(acts)[0]}", "fs_write" if acts - {"-exec", "-ok"} else "secrets")
        start_paths = [p for w in starts for p in self._path_candidates(w)]
        expression, j, deletes = args[i:], 0, False
        value_flags = set(spec.get("value_flags", ()))
        path_flags = spec.get("path_flags", {})
        while j < len(expression):
            value = expression[j].value
            if value in spec.get("deny_flags", {}):
                raise _denial(spec["deny_flags"][value], f"{label} {value} is not allowed")
            if value in ("-exec", "-ok"):
                k = j + 1
                while k < len(expression) and expression[k].value not in (";", "+"):
                    k += 1
                if k >= len(expression) or k == j + 1:
                    raise _denial("unknowable", f"{label} {value}: missing command or terminator")
                inner = [_Word("{}", "{}", tree=start_paths) if w.value == "{}" else
                         (_Word(w.value, w.raw, True) if "{}" in w.value else w) for w in expression[j + 1:k]]
                if self._is_shell(inner[0].value):
                    raise _denial("code_execution", f"{label} {value} {inner[0].value}: a shell per file is not allowed")
                self._nested_argv(inner, f"{label} {value}")
                j = k + 1
                continue
            if value == "-delete":
                deletes = True
            elif value == "-fprintf" and j + 1 < len(expression):
                self._check_path(expression[j + 1], "scratch", f"{label} {value}")
                j += 3
                continue
            elif value in path_flags and j + 1 < len(expression):
                self._check_path(expression[j + 1], path_flags[value], f"{label} {value}")
                j += 2
                continue
            elif value in value_flags or re.fullmatch(r"-newer[a-zA-Z]{2}", value):
                j += 2
                continue
            j += 1
        if deletes:  # a name/path test, -type f or -mindepth keeps the start dir itself (maybe /tmp) out of reach
            tests = {"-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex", "-mindepth"}
            values = [w.value for w in expression]
            not_dirs = any(v == "-type" and "d" not in n for v, n in zip(values, values[1:]))
            rule = "scratch_dir" if not_dirs or tests & set(values) else "scratch"
            for word in starts:
                self._check_path(word, rule, f"{label} -delete", "fs_destruction")
        return spec.get("category", "list")

    def _is_shell(self, word):
        spec = self.p["executables"].get(posixpath.basename(word))
        return bool(spec) and self._resolve_alias(spec).get("handler") == "shell"

    def _h_tar(self, spec, label, args, call):
        parsed = _parse_options(_tar_old_style(args, spec), spec)
        self._check_flags(spec, label, parsed)
        names = parsed.names()
        modes = {"-c": "create", "--create": "create", "-r": "append", "--append": "append", "-u": "append",
                 "--update": "append", "-A": "append", "--catenate": "append", "--concatenate": "append",
                 "--delete": "append", "-x": "extract", "--extract": "extract", "--get": "extract", "-t": "list",
                 "--list": "list", "-d": "list", "--diff": "list", "--compare": "list"}
        mode = {modes[n] for n in names if n in modes}
        if len(mode) != 1:
            raise _denial(None, f"{label}: needs exactly one of -c -x -t -r -u -d --delete")
        mode = mode.pop()
        for archive in parsed.values("-f", "--file"):
            if archive.value == "-":
                continue
            if ":" in archive.value and "--force-local" not in names:
                raise _denial("network", f"{label}: remote archives are not allowed: {archive.value}")
            self._check_path(archive, "read" if mode in ("extract", "list") else "scratch", label)
        dirs = parsed.values("-C", "--directory")
        if mode == "extract" and not names & {"-O", "--to-stdout"}:
            for directory in dirs or [_Word(".")]:
                self._check_path(directory, "scratch_dir", f"{label} -x", "fs_write")
        elif mode in ("create", "append"):
            dereference = names & {"-h", "--dereference"}
            for member in parsed.operands:
                bases = [""] if member.value.startswith("/") or not dirs else [d.value for d in dirs] + [""]
                for base in bases:
                    word = member.part(posixpath.join(base, member.value)) if base else member
                    self._check_path(word, "read_tree", label)
                    if dereference:
                        self._check_no_deref(word, f"{label} -h")
        return spec.get("category", "archive")

    def _h_dd(self, spec, label, args, call):
        operands = {}
        for word in args:
            key, eq, value = word.value.partition("=")
            if not eq or key not in ("if", "of", "bs", "ibs", "obs", "cbs", "count", "skip", "seek", "iseek", "oseek",
                                     "conv", "iflag", "oflag", "status"):
                raise _denial(None, f"{label}: operand not understood: {word.value}")
            operands[key] = word.part(value)
        source, target = operands.get("if"), operands.get("of")
        if target is not None:
            self._check_path(target, "scratch", label, "fs_write")
        endless = source is not None and any(_covers(p, c) for c in self._path_candidates(source)
                                             for p in self.p["endless_sources"])
        if source is not None and not endless:
            self._check_path(source, "read", label)
        count = operands.get("count")
        if count is None:
            if endless:
                raise _denial("disk_fill", f"{label}: an endless source without count=")
            return spec.get("category", "scratch_write")
        block = operands.get("ibs") or operands.get("bs")
        count_bytes = "count_bytes" in (operands["iflag"].value if "iflag" in operands else "")
        size = _parse_size(count.value)
        block_size = 1 if count_bytes else _parse_size(block.value) if block is not None else 512
        if size is None or block_size is None or size * block_size > self.p["disk_fill_limit_bytes"]:
            raise _denial("disk_fill", f"{label}: writes more than {self.p['disk_fill_limit_bytes']} bytes")
        return spec.get("category", "scratch_write")

    def _h_copy(self, spec, label, args, call):
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        sources = list(parsed.operands)
        targets = parsed.values("-t", "--target-directory")
        if not targets:
            if len(sources) < 2:
                raise _denial(None, f"{label}: needs a source and a destination")
            targets = [sources.pop()]
        rule = spec.get("source_rule", "read")
        if rule == "read" and parsed.names() & set(spec.get("recursive_flags", ())):
            rule = "read_tree"
        for word in sources:
            self._check_path(word, rule, label, spec.get("deny_as", "fs_write"))
            if rule == "read_tree" and parsed.names() & set(spec.get("deref_flags", ())):
                self._check_no_deref(word, label)
        for word in targets:
            self._check_path(word, "scratch_dir", label, "fs_write")
        return spec.get("category", "scratch_write")

    def _h_chmod(self, spec, label, args, call):
        # chmod modes like -x or -w look like options: anything made of mode letters is a mode
        modes = [w for w in args if re.fullmatch(r"-[rwxXst]+", w.value)]
        parsed = _parse_options([w for w in args if w not in modes], spec)
        self._check_flags(spec, label, parsed)
        operands = list(parsed.operands)
        if not modes and "--reference" not in parsed.names():
            if not operands:
                raise _denial(None, f"{label}: no mode given")
            modes = [operands.pop(0)]
        for mode in modes:
            numeric = re.fullmatch(r"[0-7]+", mode.value)
            if (numeric and int(mode.value, 8) & 0o6000) or (not numeric and re.search(r"[+=][rwxXtugo]*s", mode.value)):
                raise _denial("privilege", f"{label} {mode.value}: setuid/setgid bits are not allowed")
        self._operands_of_recursion(spec, label, parsed, operands)
        return spec.get("category", "scratch_write")

    def _operands_of_recursion(self, spec, label, parsed, operands):
        """chmod/chown: scratch paths; with -R -L the walk follows links, which may lead out of scratch."""
        for word in operands:
            self._check_path(word, "scratch", label, spec.get("deny_as", "fs_destruction"))
            if parsed.names() & {"-R", "--recursive"} and "-L" in parsed.names():
                self._check_no_deref(word, f"{label} -R -L", "fs_write")

    def _h_chown(self, spec, label, args, call):
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        operands = list(parsed.operands)
        if "--reference" not in parsed.names():
            if not operands:
                raise _denial(None, f"{label}: no owner given")
            operands.pop(0)
        self._operands_of_recursion(spec, label, parsed, operands)
        return spec.get("category", "scratch_write")


# ---------------------------------------------------------------------------------------------------------
# Small grammars: tar's old-style options, awk programs, sed scripts
# ---------------------------------------------------------------------------------------------------------
def _tar_old_style(args, spec):
    """`tar czf x.tgz dir` means `tar -c -z -f x.tgz dir`: each value-taking letter takes the next word."""
    if not args or args[0].dynamic or not re.fullmatch(r"[A-Za-z]+", args[0].value):
        return args
    value_flags, rest, out = set(spec.get("value_flags", ())), list(args[1:]), []
    for letter in args[0].value:
        out.append(args[0].part("-" + letter))
        if "-" + letter in value_flags and rest:
            out.append(rest.pop(0))
    return out + rest


def _awk_code(program):
    """The program with string and regex literals blanked (None when a literal is unterminated)."""
    out, i, n, previous = [], 0, len(program), ""
    while i < n:
        char = program[i]
        if char in "\"/" and (char == '"' or previous in "(,{};!~&|=?:[\n" or re.search(
                r"\b(print|printf|return|in)\s*$", "".join(out))):
            end = i + 1
            while end < n and program[end] != char:
                end += 2 if program[end] == "\\" else 1
            if end >= n:
                return None
            out.append("S" if char == '"' else "R")
            i, previous = end + 1, "S"
            continue
        if char == "#":
            while i < n and program[i] != "\n":
                i += 1
            continue
        out.append(char)
        if not char.isspace():
            previous = char
        i += 1
    return "".join(out)


def _awk_problem(program):
    """(category, why) when an awk program can do more than filter text, else None."""
    code = _awk_code(program)
    if code is None:
        return "unknowable", "awk program could not be read"
    checks = ((r"\bsystem\s*\(", "code_execution", "system() runs shell commands"),
              (r"(?<!\|)\|(?!\|)", "code_execution", "pipes to or from commands run a shell"),
              (r"\bENVIRON\b|\bPROCINFO\b", "secrets", "ENVIRON/PROCINFO expose the agent's environment"),
              (r"@", "code_execution", "@load/@include and indirect calls (@f(), f = \"system\") are not allowed"),
              (r"\bgetline\b[^;{}\n]*<", "secrets", "getline < file reads files the policy cannot check"))
    for regex, category, why in checks:
        if re.search(regex, code):
            return category, why
    for match in re.finditer(r"\bprintf?\b", code):
        depth = 0
        for char in code[match.end():]:
            if char in "({[":
                depth += 1
            elif char in ")}]":
                depth -= 1
                if depth < 0:
                    break
            elif char in ";\n" and depth == 0:
                break
            elif char == ">" and depth == 0:
                return "fs_write", "print > file writes files the policy cannot check"
    return None


def _sed_files(script):
    """(files read, files written) by a sed script; raises ValueError((category, why)) on e or unknown commands."""
    i, n = 0, len(script)
    reads, writes = [], []

    def skip(i, chars=" \t"):
        while i < n and script[i] in chars:
            i += 1
        return i

    def delimited(i, delimiter):
        while i < n:
            if script[i] == "\\":
                i += 2
            elif script[i] == delimiter:
                return i + 1
            else:
                i += 1
        raise ValueError("unknowable", "unterminated expression in sed script")

    def address(i):
        """Skip one address: a line number, $, first~step, +N, ~N, /regex/ or \\cregexc."""
        if script[i:i + 1].isdigit() or script[i:i + 1] in ("$", "+", "~"):
            return skip(i + 1, "0123456789~")
        if script[i:i + 1] == "/":
            return skip(delimited(i + 1, "/"), "IM")
        if script[i:i + 1] == "\\" and i + 1 < n:
            return skip(delimited(i + 2, script[i + 1]), "IM")
        return i

    def line_rest(i):
        end = script.find("\n", i)
        end = n if end < 0 else end
        return script[i:end].strip(), end

    while i < n:
        i = skip(i, " \t\n;")
        if i >= n:
            break
        i = skip(address(i))
        if script[i:i + 1] == ",":  # addr1,addr2
            i = skip(address(skip(i + 1)))
        if script[i:i + 1] == "!":
            i = skip(i + 1)
        if i >= n:
            break
        command = script[i]
        i += 1
        if command in "{}=dDgGhHnNpPxzFlLqQ":
            i = skip(i, " \t0123456789")
        elif command == "#":  # a comment runs to the end of the line
            i = line_rest(i)[1]
        elif command in "bTt:v":  # a label (GNU sed ends it at `;` too)
            while i < n and script[i] not in ";\n":
                i += 1
        elif command in "aic":
            while True:
                i = line_rest(i)[1]
                if i < n and script[i - 1:i] == "\\":
                    i += 1
                    continue
                break
        elif command in "rRwW":
            name, i = line_rest(i)
            (reads if command in "rR" else writes).append(name)
        elif command in "sy":
            if i >= n or script[i] in "\\\n":
                raise ValueError("unknowable", f"bad {command} command in sed script")
            delimiter = script[i]
            i = delimited(delimited(i + 1, delimiter), delimiter)
            while command == "s" and i < n and script[i] not in ";\n}":
                flag = script[i]
                if flag == "e":
                    raise ValueError("code_execution", "the e flag runs the pattern space as a command")
                if flag == "w":
                    name, i = line_rest(i + 1)
                    writes.append(name)
                    break
                if flag not in "gpiImM0123456789 \t":
                    raise ValueError("unknowable", f"unknown s flag {flag!r} in sed script")
                i += 1
        elif command == "e":
            raise ValueError("code_execution", "the e command runs a shell command")
        else:
            raise ValueError("unknowable", f"unknown sed command {command!r}")
    return reads, writes
