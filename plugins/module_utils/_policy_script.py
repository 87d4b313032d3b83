# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# The command that runs is the command that was checked. A compound command is not handed to a shell as the
# operator typed it: the script is REGENERATED from the parse tree the policy walked, and run with bash (the
# grammar bashlex implements). Every literal is re-quoted from the value the policy computed; operators,
# pipelines, lists, groups, subshells, if/for, redirections and substitutions come from the tree; here-document
# bodies are emitted under a fresh quoted delimiter. Whatever bashlex believed is what bash runs, and a
# construct that cannot be regenerated faithfully is refused (deny.unknowable) instead of being guessed at.
#
# bashlex reads here-documents differently from bash (it compares lines with the delimiter as written, quotes
# included, and drops backslash-newlines from quoted bodies): _read_heredoc replaces its reader with bash's rule.

import re

# sibling files: through the collection's path in Ansible (AnsiballZ ships what these name); in the agent's
# dtma_agent.policy package, which links the same files in under the same names, relatively
if __name__.startswith("ansible_collections."):
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_types import _denial
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_words import _bracket_end, _scan_word
else:
    from ._policy_types import _denial
    from ._policy_words import _bracket_end, _scan_word

SHELL = "/bin/bash"
SHELL_ARGV = [SHELL, "--norc", "--noprofile", "-c"]

# words bash reads as syntax in some position: never emitted bare
_RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "in",
             "function", "select", "coproc", "{", "}", "!", "[[", "]]"}
_BARE = re.compile(r"[A-Za-z0-9_@%+:,./-]+\Z")  # shlex's safe characters, without `=` (NAME=x would assign)
_PARAM = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*|[0-9?$#!@*-])|\{([A-Za-z_][A-Za-z0-9_]*|[0-9?$#!@*-])\}"
                    r"|\{(#?)([A-Za-z_][A-Za-z0-9_]*)((?::?[-+?]|##?|%%?)[A-Za-z0-9_./:@%+,=*?-]*)?\})\Z")
_BRACKET = re.compile(r"\[[A-Za-z0-9_!^:.,=+@%/\[\]-]+\]")  # no quotes, spaces or expansions inside
_TILDE = re.compile(r"~[A-Za-z0-9_.-]*\Z")
_BASH_ONLY = ("<(", ">(", "|&", "&>", "<<<")


def _unknowable(reason):
    return _denial("unknowable", f"cannot be run exactly as checked: {reason}")


def quote(text):
    """A shell word whose value is exactly text (bare when that is unambiguous, else single-quoted)."""
    if _BARE.match(text) and text not in _RESERVED:
        return text
    return "'" + text.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------------------------------------------------
# Here-documents as bash reads them
# ---------------------------------------------------------------------------------------------------------
def _read_heredoc(tokenizer, redirnode, lineno, killleading):  # pylint: disable=unused-argument
    """bashlex.heredoc.makeheredoc with bash's rules: the body ends at the first line equal to the delimiter
    after quote removal (leading tabs stripped for <<-); a quoted delimiter keeps the body verbatim."""
    from bashlex import ast, errors  # pylint: disable=import-outside-toplevel

    raw = redirnode.output.word
    delimiter, flags = _scan_word(raw)
    text, start = tokenizer._shell_input_line, tokenizer._shell_input_line_index  # pylint: disable=protected-access
    if flags & {"subst", "dollar", "unbalanced"} or "\n" in delimiter or not delimiter:
        raise errors.ParsingError(f"here-document delimiter not supported: {raw}", text, start)
    quoted = any(c in raw for c in "'\"\\")
    # bash reads the body from the line after the redirection (after an earlier body on that line); bashlex
    # sometimes reads it later (inside { }, loops): then it took the lines between for commands
    line_end = text.find("\n", redirnode.pos[1])
    expected = len(text) if line_end < 0 else line_end + 1
    last = getattr(tokenizer, "dtma_heredoc_end", -1)
    if last > redirnode.pos[1]:
        expected = max(expected, last)
    if start != expected:
        raise errors.ParsingError("here-document where the parser and the shell would read different lines", text, start)
    i, lines = start, []
    while True:
        if i >= len(text):
            raise errors.ParsingError(f"here-document delimited by end-of-file (wanted {delimiter!r})", text, i)
        end = text.find("\n", i)
        end = len(text) if end < 0 else end
        line = text[i:end].lstrip("\t") if killleading else text[i:end]
        i = min(end + 1, len(text))
        if line == delimiter:
            break
        if not quoted and (len(line) - len(line.rstrip("\\"))) % 2:
            # bash joins the next line to this one before it looks for the delimiter
            raise errors.ParsingError("backslash-newline in an unquoted here-document", text, end)
        lines.append(line + "\n")
    tokenizer._shell_input_line_index = i  # pylint: disable=protected-access
    tokenizer.dtma_heredoc_end = i
    redirnode.heredoc = ast.node(kind="heredoc", value="".join(lines), pos=(start, i - 1), quoted=quoted)
    if redirnode.pos[1] + 1 == start:
        redirnode.pos = (redirnode.pos[0], i - 1)
    return redirnode.heredoc.value


def install_heredoc_reader():
    import bashlex.heredoc  # pylint: disable=import-outside-toplevel

    if bashlex.heredoc.makeheredoc is not _read_heredoc:
        bashlex.heredoc.makeheredoc = _read_heredoc


# ---------------------------------------------------------------------------------------------------------
# Regeneration
# ---------------------------------------------------------------------------------------------------------
class Regenerator:
    """Emits a bash script from bashlex trees of the source text `src`.

    nested: {(src, pos): regenerated string} for words the policy judged as command strings (sh -c '...'):
    they are emitted as the regenerated inner script, not as typed. None as a value: the word stood for
    several strings (in a loop) and cannot be regenerated. posix: the script is for a shell other than bash,
    so bash-only syntax is refused.
    """

    def __init__(self, src, nested, posix=False):
        self.src, self.nested, self.posix = src, nested, posix
        self.pending = []  # here-document bodies waiting for the end of the line
        self.delimiters = 0

    def script(self, trees):
        lines = []
        for tree in trees:
            lines.append(self._line(tree))
        text = "\n".join(lines)
        if self.posix and any(token in text for token in _BASH_ONLY):
            raise _unknowable("bash-only syntax in a string for a POSIX shell")
        return text

    def _line(self, node):
        """node and then the here-document bodies it opened (they start on the next line)."""
        saved, self.pending = self.pending, []
        try:
            text = self._node(node)
            for delimiter, body in self.pending:
                text += "\n" + body + delimiter
        finally:
            self.pending = saved
        return text

    # --- structure -------------------------------------------------------------------------------------------
    def _node(self, node):
        kind = node.kind
        handler = getattr(self, "_n_" + kind, None)
        if handler is None:
            raise _unknowable(f"shell construct {kind}")
        return handler(node)

    def _n_list(self, node):
        out = []
        for part in node.parts:
            if part.kind == "operator":
                op = ";" if part.op == "\n" else part.op
                if op not in (";", "&&", "||", "&"):
                    raise _unknowable(f"operator {op!r}")
                out.append(op)
            else:
                out.append(self._node(part))
        while out and out[-1] == ";":
            out.pop()
        return " ".join(out)

    def _n_pipeline(self, node):
        out = []
        for part in node.parts:
            if part.kind == "pipe":
                if part.pipe not in ("|", "|&"):
                    raise _unknowable(f"pipe {part.pipe!r}")
                out.append(part.pipe)
            elif part.kind == "reservedword":
                if part.word != "!":
                    raise _unknowable(f"reserved word {part.word!r} in a pipeline")
                out.append("!")
            else:
                out.append(self._node(part))
        return " ".join(out)

    def _n_compound(self, node):
        words = [p.word for p in node.list if p.kind == "reservedword"]
        inner = [p for p in node.list if p.kind != "reservedword"]
        if words[:1] == ["("] and words[-1:] == [")"]:
            body = " ; ".join(self._node(p) for p in inner)
            text = "( " + body + " )"
        elif words[:1] == ["{"] and words[-1:] == ["}"]:
            body = " ; ".join(self._node(p) for p in inner)
            text = "{ " + body + (" }" if body.endswith("&") else " ; }")
        elif not words and len(inner) == 1 and inner[0].kind in ("for", "if"):
            text = self._node(inner[0])
        else:
            raise _unknowable("compound command " + " ".join(words))
        for redirect in getattr(node, "redirects", None) or []:
            text += " " + self._n_redirect(redirect)
        return text

    def _clauses(self, node, skip=()):
        """if/for bodies: reserved words, with `;` before then/do/else/elif/fi/done; lists in between."""
        out = []
        for part in node.parts:
            if part.kind == "reservedword":
                if part.word in skip:
                    continue
                if part.word in ("then", "do", "else", "elif", "fi", "done") and out and not out[-1].endswith("&") \
                        and out[-1] not in ("then", "do", "else"):
                    out.append(";")
                out.append(part.word)
            else:
                out.append(self._node(part))
        return " ".join(out)

    def _n_if(self, node):
        return self._clauses(node)

    def _n_for(self, node):
        parts = node.parts
        if len(parts) < 4 or parts[1].kind != "word" or parts[2].kind != "reservedword" or parts[2].word != "in":
            raise _unknowable("only `for NAME in WORDS...; do ...; done` loops")
        name = self._raw(parts[1])
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise _unknowable(f"loop variable {name!r}")
        out, i = ["for", name, "in"], 3
        while i < len(parts) and parts[i].kind == "word":
            out.append(self._word(parts[i]))
            i += 1
        return " ".join(out) + " ; " + self._clauses(_Rest(parts[i:]), skip=(";", "\n"))

    # --- simple commands ------------------------------------------------------------------------------------
    def _n_command(self, node):
        out = []
        for part in node.parts:
            if part.kind == "word":
                out.append(self._word(part))
            elif part.kind == "assignment":
                out.append(self._assignment(part))
            elif part.kind == "redirect":
                out.append(self._n_redirect(part))
            else:
                raise _unknowable(f"command part {part.kind}")
        return " ".join(out)

    def _n_redirect(self, node):
        kind, target = node.type, node.output
        fd = "" if node.input is None else str(node.input)
        if not re.fullmatch(r"[0-9]*", fd):
            raise _unknowable(f"redirection {fd}{kind}")
        if kind in ("<<", "<<-"):
            heredoc = getattr(node, "heredoc", None)
            if heredoc is None or not hasattr(heredoc, "quoted"):
                raise _unknowable("a here-document the shell would read differently")
            body = heredoc.value
            if not heredoc.quoted:  # the shell's only processing of such a body (it holds no $ or `)
                body = re.sub(r"\\([\\$`])", r"\1", body)
            lines = set(body.split("\n"))
            self.delimiters += 1
            delimiter = f"DTMA_EOF_{self.delimiters}"
            while delimiter in lines:
                delimiter += "_"
            self.pending.append((delimiter, body))
            return f"{fd}<<'{delimiter}'"
        if kind not in ("<", ">", ">>", ">|", "<>", ">&", "<&", "&>", "&>>", "<<<"):
            raise _unknowable(f"redirection {kind}")
        if isinstance(target, int):
            return f"{fd}{kind}{target}"
        if not hasattr(target, "kind"):
            raise _unknowable(f"redirection target {target!r}")
        if kind in (">&", "<&") and self._raw(target) == "-":
            return f"{fd}{kind}-"
        return f"{fd}{kind} {self._word(target)}"

    def _assignment(self, node):
        raw = self._raw(node)
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*\+?=", raw)
        if not match or raw[match.end():].startswith("("):
            raise _unknowable(f"assignment {raw}")
        return match.group(0) + self._word(node, skip=match.end(), allow_empty=True)

    # --- words ------------------------------------------------------------------------------------------------
    def _raw(self, node):
        return self.src[node.pos[0]:node.pos[1]]

    def _word(self, node, skip=0, allow_empty=False):
        """The word re-emitted: literals quoted from their values, expansions the policy followed kept. Braces
        are literals: the policy reads {a,b} as one word of unknown value, and one word it stays."""
        start = node.pos[0]
        raw = self.src[start:node.pos[1]]
        nested = self.nested.get((self.src, tuple(node.pos)), False)
        if nested is None:
            raise _unknowable(f"a command string that differs between loop iterations: {raw}")
        if nested is not False:
            return quote(nested)
        holes = {p.pos[0] - start: p for p in (node.parts or []) if p.kind in
                 ("parameter", "commandsubstitution", "processsubstitution", "tilde")}
        out, literal = [], []

        def flush():
            if literal:
                out.append(quote("".join(literal)))
                literal.clear()

        def emit(text):
            flush()
            out.append(text)

        i, n, in_double = skip, len(raw), False
        while i < n:
            hole = holes.get(i)
            if hole is not None:
                text = self._hole(hole, raw[i:hole.pos[1] - start], in_double)
                emit(text)
                i = hole.pos[1] - start
                continue
            char, nxt = raw[i], raw[i + 1:i + 2]
            if char == "\\":
                if nxt == "\n":
                    i += 2
                elif in_double and nxt not in ("$", "`", '"', "\\"):
                    literal.append(char)
                    i += 1
                else:
                    literal.append(nxt)
                    i += 2
                continue
            if char == "'" and not in_double:
                end = raw.find("'", i + 1)
                if end < 0:
                    raise _unknowable(f"unbalanced quote in {raw}")
                literal.append(raw[i + 1:end])
                i = end + 1
                continue
            if char == '"':
                in_double = not in_double
                i += 1
                continue
            if char in "$`":
                if char == "$" and (not nxt or nxt in ' \t\n"' and in_double or nxt in " \t\n" and not in_double):
                    literal.append(char)  # a lone $ is itself
                    i += 1
                    continue
                raise _unknowable(f"expansion not understood: {raw}")
            if not in_double and char in "*?":
                emit(char)
            elif not in_double and char == "[" and _bracket_end(raw, i) > 0:
                end = _bracket_end(raw, i)  # a bracket expression as bash delimits it, emitted as it is
                if not _BRACKET.fullmatch(raw, i, end):
                    raise _unknowable(f"glob bracket expression: {raw}")
                emit(raw[i:end])
                i = end
                continue
            else:
                literal.append(char)
            i += 1
        if in_double:
            raise _unknowable(f"unbalanced quote in {raw}")
        flush()
        text = "".join(out)
        if not text and not allow_empty:
            if not any(q in raw[skip:] for q in "'\""):
                raise _unknowable(f"empty word {raw!r}")
            text = "''"  # "" or '': an empty argument
        return text

    def _hole(self, part, raw, in_double):
        if part.kind == "tilde":
            if in_double or not _TILDE.match(raw):
                raise _unknowable(f"tilde expression {raw}")
            return raw
        if part.kind == "parameter":
            match = _PARAM.match(raw)
            if not match:
                raise _unknowable(f"parameter expansion {raw}")
            name = match.group(1) or match.group(2)
            text = "${" + name + "}" if name else raw
            return '"' + text + '"' if in_double else text
        inner = self._line(part.command)
        inner = " " + inner if inner.startswith("(") else inner
        if "\n" in inner:
            inner += "\n"
        if part.kind == "processsubstitution":
            if in_double or raw[:1] not in "<>":
                raise _unknowable(f"process substitution {raw}")
            return raw[0] + "(" + inner + ")"
        text = "$(" + inner + ")"
        return '"' + text + '"' if in_double else text


class _Rest:  # pylint: disable=too-few-public-methods
    """The tail of a for node's parts, as a node for _clauses."""

    def __init__(self, parts):
        self.parts = parts
