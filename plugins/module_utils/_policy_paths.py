# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# Path rules: the absolute paths a word can name, and the read / write / secret checks on them.

import fnmatch
import os
import posixpath

try:
    import pwd
except ImportError:  # not a POSIX system: ~user is never resolved
    pwd = None

# sibling files: through the collection's path in Ansible (AnsiballZ ships what these name); in the agent's
# dtma_agent.policy package, which links the same files in under the same names, relatively
if __name__.startswith("ansible_collections."):
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_types import _denial
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_words import (
        _ANY, _covers, _expand_glob, _globs_overlap, _is_inside, _literal_prefix, _normpath,
    )
else:
    from ._policy_types import _denial
    from ._policy_words import _ANY, _covers, _expand_glob, _globs_overlap, _is_inside, _literal_prefix, _normpath


class _PathRules:
    """The path rules of one evaluation: where relative paths point, what is secret, protected or scratch."""

    def __init__(self, data, context):
        self.p, self.ctx = data, context
        self.cwds = [_normpath(posixpath.join("/", context.cwd or "/"))]
        self.scratch = sorted({_normpath(d) for d in list(data["scratch_dirs"]) + list(context.scratch_dirs)
                               if d.startswith("/") and _normpath(d) != "/"})
        self.agent_home = _normpath(context.agent_home) if context.agent_home else None
        self.context_secrets = [_normpath(p) for p in context.secret_paths]
        self.secrets = list(data["secret_paths"]) + self.context_secrets
        self.protected = list(data["protected_paths"].items())
        if self.agent_home:
            self.protected.append(("persistence", [self.agent_home]))

    def _path_candidates(self, word):
        """Absolute, normalised patterns a path word can name (several when cwd or symlinks are in play)."""
        if word.tree is not None:
            return list(word.tree)
        if word.dynamic:
            raise _denial("unknowable", f"path cannot be known statically: {word.shown()}")
        values = [word.value]
        if word.tilde and word.value.startswith("~"):  # the home dir is not known here: any user's, or root's
            user, rest = word.value[1:].partition("/")[::2]
            if user[:1] in ("+", "-"):
                raise _denial("unknowable", f"path cannot be known statically: {word.value}")
            homes = ["/root", "/home/*"] if not user else ["/root"] if user == "root" else self._home_of(user, word)
            values = [home + "/" + rest for home in homes] if homes else [word.value]
        paths = []
        for value in values:
            bases = [""] if value.startswith("/") else self.cwds
            paths += [_normpath(posixpath.join(base, value) if base else value) for base in bases]
        if self.ctx.resolve_paths:
            paths += [r for p in paths if _ANY not in p for r in self._resolved(p) if r not in paths]
        return paths

    def _home_of(self, user, word):
        """~user: that user's home from the passwd database on the agent (a system user's home may be /bin,
        and ~bin/../etc/shadow is /etc/shadow); [] when there is no such user (the shell leaves ~user as it is)."""
        if not self.ctx.resolve_paths or pwd is None:
            raise _denial("unknowable", f"the home of {user} is not known here: {word.value} (write the path)")
        try:
            return [_normpath(pwd.getpwnam(user).pw_dir or "/")]
        except KeyError:
            return []

    @staticmethod
    def _resolved(path):
        """realpath of the path (or of what a glob matches now): symlinks cannot smuggle a path past a rule."""
        try:
            if any(c in path for c in "*?["):
                matches = _expand_glob(path)
                if matches is None:
                    raise _denial("unknowable", f"{path} matches too much to check its symlinks")
                return [os.path.realpath(m) for m in matches]
            return [os.path.realpath(path)]
        except OSError as exc:  # e.g. /proc/1/root: a link the agent may not follow is not one it can judge
            raise _denial("unknowable", f"cannot resolve {path}: {exc.strerror or exc}") from None

    def _check_path(self, word, rule, what, deny_as="fs_write", classify=True):
        if rule in ("none", "list"):
            return
        for path in self._path_candidates(word):
            if rule in ("read", "read_tree"):
                self._check_read(path, rule == "read_tree" or word.tree is not None, word.shown(), what)
            else:
                self._check_write(path, rule == "scratch_dir", word.shown(), what, deny_as, classify=classify)

    def _check_no_deref(self, word, label, category="secrets"):
        """A walk that follows symbolic links (grep -R, cp -rL, tar -h, find -L, chmod -R -L) never starts in or
        above a scratch dir: links planted there (by an extracted archive) lead anywhere."""
        for path in self._path_candidates(word):
            literal = _literal_prefix(path)
            glob = literal != path
            for root in self.scratch:
                meets = (literal == root or literal.startswith(root + "/")
                         or root.startswith(literal if glob else literal.rstrip("/") + "/"))
                if meets:
                    raise _denial(category, f"{label} follows symbolic links in a scratch dir ({root}), which may lead "
                                            f"anywhere: {word.shown()}")

    def _is_secret(self, path, tree=False):
        if _ANY not in path and any(fnmatch.fnmatchcase(path, e) for e in self.p["secret_exceptions"]):
            return False
        if any(_covers(s, path) for s in self.secrets):
            return True
        # below a tree: patterns that match anywhere (*/.ssh/id_*) would condemn every directory; the
        # explicit ones (/root/.ssh, /home/*/.ssh) name the trees that really hold secrets
        below = path.rstrip("/") + "/" + _ANY
        return tree and any(_globs_overlap(below, s) for s in self.secrets if not s.startswith("*"))

    def _check_read(self, path, tree, shown, what):
        if any(_covers(p, path) for p in self.p["endless_sources"]):
            raise _denial("disk_fill", f"{what} reads an endless device: {shown}")
        if any(_covers(p, path) for p in self.p["protected_paths"].get("block_device", [])):
            raise _denial("block_device", f"{what} reads a raw device: {shown}")
        if self._is_secret(path, tree):
            raise _denial("secrets", f"{what} reads a secret: {shown}" + (" (or a secret below it)" if tree else ""))

    def _check_write(self, path, allow_root, shown, what, deny_as, *, classify=True):
        if path in self.p["write_ok_paths"]:
            return
        if not any(_is_inside(path, root, allow_root) for root in self.scratch):
            category = (self._classify(path) if classify else None) or deny_as
            raise _denial(category, f"{what} outside scratch dirs: {shown}")
        if any(_covers(s, path) for s in self.context_secrets):
            raise _denial("secrets", f"{what} touches a secret: {shown}")
        if self.agent_home and _covers(self.agent_home, path):
            raise _denial("persistence", f"{what} writes into the agent's install dir: {shown}")

    def _classify(self, path):
        """The protected-path category a write to path falls in (None for plain system paths)."""
        for category, patterns in self.protected:
            if any(_covers(p, path) for p in patterns):
                return category
        if any(_covers(s, path) for s in self.secrets):
            return "secrets"
        return None
