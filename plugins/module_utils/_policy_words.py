# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# Words, globs and options: quote removal as the shell does it, glob overlap with policy patterns, and
# getopt-style option parsing driven by a spec's option tables.

import fnmatch
import os
import posixpath
import re


# ---------------------------------------------------------------------------------------------------------
# Paths and globs
# ---------------------------------------------------------------------------------------------------------
# In a path the engine built itself, _ANY stands for "any characters, `/` included" (everything below a
# directory a recursive read covers).
_ANY = "\x00"
_GLOB_CHARS = "*?[" + _ANY


def _normpath(path):
    path = posixpath.normpath(path)
    return "/" + path.lstrip("/") if path.startswith("//") else path  # POSIX keeps a leading `//`; Linux does not


def _literal_prefix(pattern):
    for i, char in enumerate(pattern):
        if char in _GLOB_CHARS:
            return pattern[:i]
    return pattern


_POSIX_CLASSES = {"alpha": "A-Za-z", "digit": "0-9", "alnum": "A-Za-z0-9", "upper": "A-Z", "lower": "a-z",
                  "space": " \\t\\n\\r\\f\\v", "blank": " \\t", "xdigit": "0-9A-Fa-f", "cntrl": "\\x00-\\x1f\\x7f",
                  "print": "\\x20-\\x7e", "graph": "\\x21-\\x7e", "word": "A-Za-z0-9_",
                  "punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")}


def _bracket_end(pattern, i):
    """The index after the bracket expression opening at pattern[i] (bash's rules), or -1 when `[` is literal."""
    j = i + 1
    if pattern[j:j + 1] in ("!", "^"):
        j += 1
    if pattern[j:j + 1] == "]":
        j += 1  # a leading ] is a member
    while j < len(pattern):
        if pattern.startswith(("[:", "[.", "[="), j):
            end = pattern.find(pattern[j + 1] + "]", j + 2)
            if end < 0:
                return -1
            j = end + 2
            continue
        if pattern[j] == "]":
            return j + 1
        j += 1
    return -1


def _bracket_regex(body):
    """A regex for one character of the bracket expression [body], as bash reads it (`!` and `^` negate,
    [:classes:], ranges); None when not understood (then it may match anything)."""
    negate = body[:1] in ("!", "^")
    body, out, j = body[1:] if negate else body, [], 0
    while j < len(body):
        if body.startswith(("[:", "[.", "[="), j):
            end = body.find(body[j + 1] + "]", j + 2)
            name = body[j + 2:end]
            if body[j + 1] != ":" or name not in _POSIX_CLASSES:
                return None
            out.append(_POSIX_CLASSES[name])
            j = end + 2
        elif j + 2 < len(body) and body[j + 1] == "-":
            if body[j] > body[j + 2]:
                return None
            out.append(re.escape(body[j]) + "-" + re.escape(body[j + 2]))
            j += 3
        else:
            out.append(re.escape(body[j]))
            j += 1
    return "[" + ("^" if negate else "") + "".join(out) + "]" if out else None


def _glob_tokens(pattern, shell):
    """Tokens of a glob: ("*", crosses_slash) | ("?", None) | ("[", class) | ("c", char).

    In a shell glob `*` stays inside one path component; in a policy pattern it crosses `/`.
    """
    tokens, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == _ANY:
            tokens.append(("*", True))
        elif char == "*":
            tokens.append(("*", not shell))
        elif char == "?":
            tokens.append(("?", None))
        elif char == "[" and _bracket_end(pattern, i) > 0:
            end = _bracket_end(pattern, i)
            tokens.append(("[", _bracket_regex(pattern[i + 1:end - 1])))
            i = end - 1
        else:
            tokens.append(("c", char))
        i += 1
    return tokens


def _chars_meet(a, b, a_is_shell):
    """Can one character match both single-character tokens a and b?"""
    if a[0] == "c" and b[0] == "c":
        return a[1] == b[1]
    for one, other in ((a, b), (b, a)):
        if one[0] == "c" and other[0] == "[":
            return other[1] is None or re.fullmatch(other[1], one[1]) is not None
    if a_is_shell and ("c", "/") in (a, b):
        return False  # a shell `?` or `[...]` never matches `/`
    return True


def _globs_overlap(user, policy):
    """Is there a path matching both the user's glob and the policy pattern? (literal strings are globs too)"""
    up, pp = _literal_prefix(user), _literal_prefix(policy)
    if not (up.startswith(pp) or pp.startswith(up)):
        return False
    if up == user and pp == policy:
        return user == policy
    if up == user:
        return fnmatch.fnmatchcase(user, policy)
    a, b = _glob_tokens(user, True), _glob_tokens(policy, False)
    # a shell wildcard starting a path component never matches a leading `.` (no dotglob)
    hides_dot = [t in (("*", False), ("?", None)) or t[0] == "[" for t in a]
    hides_dot = [hides_dot[k] and (k == 0 or a[k - 1] == ("c", "/")) for k in range(len(a))]
    seen, todo = set(), [(0, 0, True)]  # (position in a, position in b, a's star has matched nothing yet)
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        i, j, fresh = state
        ta = a[i] if i < len(a) else None
        tb = b[j] if j < len(b) else None
        if ta is None and tb is None:
            return True
        dot_barred = i < len(a) and hides_dot[i] and fresh
        if ta and ta[0] == "*":
            todo.append((i + 1, j, True))  # the star matches nothing more
            if tb and tb[0] != "*" and (ta[1] or tb != ("c", "/")) and not (dot_barred and tb == ("c", ".")):
                todo.append((i, j + 1, False))  # the star eats b's character
        if tb and tb[0] == "*":
            todo.append((i, j + 1, fresh))
            if ta and ta[0] != "*" and (tb[1] or ta != ("c", "/")):
                todo.append((i + 1, j, True))
        if ta and tb and ta[0] != "*" and tb[0] != "*" and _chars_meet(ta, tb, True) and not (dot_barred and tb == ("c", ".")):
            todo.append((i + 1, j + 1, True))
    return False


def _covers(pattern, path):
    """Does a policy path pattern cover (part of) path: the path itself or something below the pattern?"""
    return _globs_overlap(path, pattern) or _globs_overlap(path, pattern.rstrip("/") + "/*")


def _is_inside(path, root, allow_root):
    """Is every path the (possibly glob) path can name inside root?"""
    if path == root:
        return allow_root
    if not _literal_prefix(path).startswith(root + "/"):
        return False
    # a wildcard component starting with `.` can match `..` and climb out
    return not any(part.startswith(".") and any(c in part for c in _GLOB_CHARS) for part in path.split("/"))


def _component_regex(part):
    """A regex for one path component of a shell glob, with bash's bracket expressions."""
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "[" and _bracket_end(part, i) > 0:
            end = _bracket_end(part, i)
            out.append(_bracket_regex(part[i + 1:end - 1]) or ".")
            i = end
            continue
        out.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        i += 1
    return "".join(out)


def _expand_glob(pattern, budget=5000):
    """The paths a shell glob matches now, reading at most `budget` directory entries (None beyond that)."""
    found = ["/"]
    for part in pattern.strip("/").split("/"):
        if not any(c in part for c in "*?["):
            found = [posixpath.join(base, part) for base in found]
            continue
        matched, regex = [], _component_regex(part)
        for base in found:
            try:
                with os.scandir(base) as entries:
                    for entry in entries:
                        budget -= 1
                        if budget < 0:
                            return None
                        # like sh: a wildcard never matches a leading dot
                        if re.fullmatch(regex, entry.name, re.S) and (part[0] == "." or entry.name[0] != "."):
                            matched.append(posixpath.join(base, entry.name))
            except OSError:
                continue
        found = matched
    return [path for path in found if os.path.lexists(path)]


def _parse_size(text):
    """Bytes in a dd/truncate size like 512, 4K, 1MB, 2GiB, 1Mx4 (None when not understood)."""
    units = {"": 1, "c": 1, "w": 2, "b": 512, "k": 1024, "K": 1024, "kB": 1000, "KB": 1000, "KiB": 1024}
    for power, letter in enumerate("MGTPEZY", start=2):
        units.update({letter: 1024 ** power, letter + "B": 1000 ** power, letter + "iB": 1024 ** power})
    total = 1
    for factor in text.lstrip("+-<>/%").split("x"):
        match = re.fullmatch(r"(\d+)([A-Za-z]*)", factor)
        if not match or match.group(2) not in units:
            return None
        total *= int(match.group(1)) * units[match.group(2)]
    return total


# ---------------------------------------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------------------------------------
def _bracket_may_match(text, char):
    """Can the bracket expression that text starts with match char (unknown expressions can)?"""
    end = _bracket_end(text, 0)
    regex = _bracket_regex(text[1:end - 1]) if end > 0 else None
    return regex is None or re.fullmatch(regex, char) is not None


def _scan_word(raw):
    """Quote removal on a word's source text, as sh does it: (value, flags).

    flags: "subst" (a command/process/arithmetic substitution), "dollar" (a parameter expansion or $'..'),
    "glob" (an unquoted * ? [), "lead_glob" (the word starts with one), "brace" (unquoted {a,b} or {1..9}),
    "unbalanced" (an unterminated quote).
    """
    out, unquoted, flags = [], [], set()
    i, n, in_double = 0, len(raw), False
    while i < n:
        char = raw[i]
        nxt = raw[i + 1:i + 2]
        if char == "\\":
            if nxt == "\n":
                i += 2
                continue
            if in_double and nxt not in ("$", "`", '"', "\\"):
                out.append(char)  # inside "...", a backslash only escapes $ ` " \
                i += 1
                continue
            out.append(nxt)
            unquoted.append("_")
            i += 2
            continue
        if char == "'" and not in_double:
            end = raw.find("'", i + 1)
            if end < 0:
                flags.add("unbalanced")
                end = n
            out.append(raw[i + 1:end])
            unquoted.append("_" * (end - i - 1))
            i = end + 1
            continue
        if char == '"':
            in_double = not in_double
            i += 1
            continue
        if char == "`" or (char == "$" and nxt in ("(", "[")):
            flags.add("subst")
        elif char == "$" and nxt and (nxt.isalnum() or nxt in "_{@*#?$!-'\""):
            flags.add("dollar")
        elif not in_double and char in "<>" and nxt == "(":
            flags.add("subst")
        elif not in_double and (char in "*?" or (char == "[" and "]" in raw[i + 1:])):
            flags.add("glob")
            # a leading wildcard can expand to a file named like an option (`-rf`, `--to-command=sh`)
            if not out and (char != "[" or _bracket_may_match(raw[i:], "-")):
                flags.add("lead_glob")
        out.append(char)
        unquoted.append("_" if in_double else char)
        i += 1
    if in_double:
        flags.add("unbalanced")
    if re.search(r"\{[^{}]*(,|\.\.)[^{}]*\}", "".join(unquoted)):
        flags.add("brace")
    return "".join(out), flags


class _Word:
    """One argument: its value after quote removal, and what is known about it."""

    __slots__ = ("value", "raw", "dynamic", "glob", "tilde", "tree", "key")

    def __init__(self, value, raw=None, dynamic=False, glob=False, tilde=False, *, tree=None, key=None):
        self.value, self.raw = value, value if raw is None else raw
        self.dynamic, self.glob, self.tilde = dynamic, glob, tilde
        self.tree = tree  # find's {}: the start paths; the word is one of them or anything below
        self.key = key  # where the word stands in the source: (text, pos) or ("argv", index)

    def part(self, value):
        """A word for part of this one (an option's attached value)."""
        return _Word(value, value, self.dynamic, self.glob, value.startswith("~"))

    def shown(self):
        return self.raw if self.dynamic else self.value


class _Call:
    """Where a simple command runs: piped stdin, the executables upstream in its pipeline, xargs input."""

    def __init__(self, piped=False, upstream=(), unknown_tail=False):
        self.piped, self.upstream, self.unknown_tail = piped, upstream, unknown_tail

    def with_tail(self, unknown_tail):
        return _Call(self.piped, self.upstream, self.unknown_tail or unknown_tail)


class _Parsed:
    """Options and operands of an argv tail."""

    def __init__(self, flags, operands):
        self.flags, self.operands = flags, operands  # flags: [(name, _Word or None)]

    def spread(self):
        """Options whose value is a word of its own that the shell may turn into several (a glob, $X, $(...)):
        the words after it would then shift into other places."""
        return [name for name, value in self.flags if value is not None and value.key is not None
                and (value.dynamic or value.glob)]

    def names(self):
        return {flag[0] for flag in self.flags}

    def values(self, *names):
        return [value for name, value in self.flags if name in names and value is not None]


def _flag_names(spec):
    names = set()
    for key in ("value_flags", "opt_value_flags", "allow_flags", "recursive_flags", "read_only_flags",
                "pattern_flags", "size_flags", "replace_flags", "shell_flags", "lookup_flags"):
        names.update(spec.get(key, ()))
    for key in ("deny_flags", "path_flags"):
        names.update(spec.get(key, {}))
    return names


def _canonical_long(name, spec):
    """GNU getopt accepts any unambiguous prefix of a long option (--no-pres = --no-preserve-root)."""
    known = _flag_names(spec)
    if name in known:
        return name
    candidates = sorted(k for k in known if k.startswith(name) and k.startswith("--"))
    denied = [k for k in candidates if k in spec.get("deny_flags", {})]
    return (denied or candidates or [name])[0]


def _parse_options(args, spec, stop_at_operand=False):
    """Split args into options and operands the way getopt would, using the spec's option tables."""
    value_flags = set(spec.get("value_flags", ()))
    opt_flags = set(spec.get("opt_value_flags", ()))
    flags, operands, i = [], [], 0
    while i < len(args):
        word = args[i]
        value = word.value
        if word.dynamic or value == "-" or not value.startswith("-"):
            if stop_at_operand:
                operands.extend(args[i:])
                break
            operands.append(word)
        elif value == "--":
            operands.extend(args[i + 1:])
            break
        elif value.startswith("--"):
            name, eq, attached = value.partition("=")
            name = _canonical_long(name, spec)
            if eq:
                flags.append((name, word.part(attached)))
            elif name in value_flags and i + 1 < len(args):
                flags.append((name, args[i + 1]))
                i += 1
            else:
                flags.append((name, None))
        else:
            for j in range(1, len(value)):
                name = "-" + value[j]
                if name in value_flags or name in opt_flags:
                    rest = value[j + 1:]
                    rest = rest[1:] if rest.startswith("=") else rest  # pflag-style -v=/x
                    if rest:
                        flags.append((name, word.part(rest)))
                    elif name in value_flags and i + 1 < len(args):
                        flags.append((name, args[i + 1]))
                        i += 1
                    else:
                        flags.append((name, None))
                    break
                flags.append((name, None))
        i += 1
    return _Parsed(flags, operands)


def _lookup_spec(executables, path):
    """The spec named by a same_as path like "docker ps", or None."""
    words = path.split()
    spec = executables.get(words[0]) if words else None
    for word in words[1:]:
        spec = (spec or {}).get("subcommands", {}).get(word)
    return spec
