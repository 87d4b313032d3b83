# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# Handlers of commands whose argument grammar needs code: shells and builtins, processes, services,
# networking, curl/wget and Docker. Text and file tools are in _policy_tools_files.py.

import csv
import fnmatch
import ipaddress
import os
import posixpath
import re
import socket
from urllib.parse import urlsplit

# sibling files: through the collection's path in Ansible (AnsiballZ ships what these name); in the agent's
# dtma_agent.policy package, which links the same files in under the same names, relatively
if __name__.startswith("ansible_collections."):
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_types import _denial
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_words import (
        _globs_overlap, _normpath, _parse_options, _Word,
    )
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_walk import _Walker
    from ansible_collections.agentopia.dtma.plugins.module_utils._docker_access import cli_subcommand_kind
    from ansible_collections.agentopia.dtma.plugins.module_utils._docker_access import _MANAGEMENT as DOCKER_MANAGEMENT
else:
    from ._policy_types import _denial
    from ._policy_words import _globs_overlap, _normpath, _parse_options, _Word
    from ._policy_walk import _Walker
    from .docker_access import cli_subcommand_kind  # the agent links _docker_access.py as docker_access.py
    from .docker_access import _MANAGEMENT as DOCKER_MANAGEMENT


class _SystemTools(_Walker):
    """Shells, builtins, signals, systemd, ip, curl/wget and docker run/exec/cp."""

    def _h_shell(self, spec, label, args, call):
        want_string, i = False, 0
        while i < len(args):
            value = args[i].value
            if value in ("--norc", "--noprofile", "--posix"):
                i += 1
                continue
            if value == "--":
                i += 1
                break
            if value.startswith("--"):
                raise _denial("unknowable", f"{label}: option not allowed: {value}")
            if len(value) < 2 or value[0] not in "-+":
                break
            for letter in value[1:]:
                if letter == "c":
                    want_string = True
                elif letter == "i":
                    raise _denial("reverse_shell", f"{label} -i starts an interactive shell")
                elif letter == "s":
                    raise self._code_denial(label, call, "unknowable", f"{label} -s reads commands from stdin")
                elif letter == "o":
                    i += 1  # the option name: -o pipefail
                elif letter not in "euxvfnaCh":
                    raise _denial("unknowable", f"{label}: option -{letter} is not allowed")
            i += 1
        operands = args[i:]
        if want_string:
            if not operands:
                raise _denial("unknowable", f"{label} -c needs a command string")
            self._nested_string(operands[0], f"{label} -c")
            return spec.get("category", "shell")
        if operands:
            raise _denial("unknowable", f"{label} {operands[0].shown()}: running a script file cannot be checked")
        raise self._code_denial(label, call, "unknowable", f"{label} would read commands from stdin, which cannot be checked")

    def _h_cd(self, spec, label, args, call):
        operands = [w for w in args if not (w.value.startswith("-") and w.value != "-")]
        if len(operands) != 1 or operands[0].value == "-":
            raise _denial("unknowable", "cd needs exactly one directory (not `cd`, `cd -`)")
        new = self._path_candidates(operands[0])
        # later relative paths are checked against every directory the shell may be in (cd may fail);
        # the list walker narrows this to `new` for a `cd X && ...` chain
        self.cwds = list(dict.fromkeys(self.cwds + new))
        self.last_cd = new
        if len(self.cwds) > 16:
            raise _denial("unknowable", "too many cd targets to follow")
        return spec.get("category", "builtin")

    def _h_shell_vars(self, spec, label, args, call):
        values = [w.value for w in args]
        if any("HIST" in v.upper() for v in values):
            raise _denial("log_tampering", f"{label} would change shell history settings")
        option_words = ("-o", "+o", "pipefail", "errexit", "nounset", "xtrace", "noclobber", "noglob", "--")
        if label == "set" and values and values[-1] != "--" and all(
                re.fullmatch(r"[-+][euxvfnCbhmBPo]+", v) or v in option_words for v in values):
            return "shell_option"
        if not values or "-p" in values or values == ["-x"]:
            raise _denial("secrets", f"{label} prints the shell's variables (the agent's environment)")
        if label == "export" and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(=.*)?", v, re.S) for v in values):
            for word in args:  # export LANG=C.UTF-8 TZ: what a prefix assignment may set, exported
                self._check_assignment(word)
            return spec.get("category", "builtin")
        raise _denial("environment", f"{label} changes shell variables, which the policy cannot follow")

    def _h_kill(self, spec, label, args, call):
        values = [w.value for w in args]
        if values[:1] in (["-l"], ["-L"], ["--list"], ["--table"]):
            return spec.get("category", "process_signal")
        i = 0
        if values[:1] and values[0] in ("-s", "-n", "--signal"):
            i = 2
        elif len(values) > 1 and re.fullmatch(r"-[A-Za-z0-9+]+", values[0]):
            i = 1  # -9, -KILL, -SIGTERM
        if values[i:i + 1] == ["--"]:
            i += 1
        pids = values[i:]
        if not pids:
            raise _denial("protected_process", f"{label}: no pid given (kill -1 means every process)")
        if call.unknown_tail or any(w.dynamic for w in args[:i]):
            raise _denial("unknowable", f"{label}: signal or pids cannot be known statically")
        protected = self._protected_pids()
        for word in args[i:]:
            if word.dynamic:
                self._check_pidof(word, label, protected)
        for pid in (w.value for w in args[i:] if not w.dynamic):
            if not re.fullmatch(r"[0-9]+", pid):
                raise _denial("protected_process", f"{label} {pid}: only single positive pids may be signalled")
            if int(pid) <= 1 or int(pid) in protected:
                raise _denial("protected_process", f"{label} {pid}: protected process (PID 1, the agent or dockerd)")
        return spec.get("category", "process_signal")

    def _check_pidof(self, word, label, protected):
        """kill ... $(pidof NAME) / $(pgrep -x NAME): the pids of processes named NAME, never a protected one."""
        match = re.fullmatch(r'("?)\$\(\s*(?:pidof((?:\s+-[sx])*)((?:\s+[A-Za-z0-9_.:+@-]+)+)'
                             r'|pgrep\s+-x\s+([A-Za-z0-9_.:+@-]+))\s*\)\1', word.raw)
        if not match:
            raise _denial("unknowable", f"{label}: pids may come from $(pidof NAME) or $(pgrep -x NAME) only, not {word.raw}")
        names = (match.group(3) or match.group(4)).split()
        for name in names:
            if any(fnmatch.fnmatchcase(name, n) for n in self.p["protected_process_names"]):
                raise _denial("protected_process", f"{label} $(pidof {name}): a protected process (PID 1, the agent or dockerd)")
        if self.ctx.resolve_paths:  # on the agent: the processes of that name now, against the protected pids
            for pid in self._pids_named(names):
                if pid in protected or pid <= 1:
                    raise _denial("protected_process", f"{label} $(pidof {' '.join(names)}): matches protected pid {pid}")

    @staticmethod
    def _pids_named(names):
        found = []
        try:
            entries = [e for e in os.listdir("/proc") if e.isdigit()]
        except OSError:
            return found
        for entry in entries:
            try:
                with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as handle:
                    comm = handle.read().strip()
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    argv0 = handle.read().split(b"\0", 1)[0].decode("utf-8", "replace")
            except OSError:
                continue
            if comm in names or posixpath.basename(argv0) in names or any(n[:15] == comm for n in names):
                found.append(int(entry))
        return found

    def _protected_pids(self):
        pids = {1} | {int(p) for p in self.ctx.protected_pids}
        if not self.ctx.resolve_paths:
            return pids
        names = self.p["protected_process_names"]
        try:
            entries = [e for e in os.listdir("/proc") if e.isdigit()]
        except OSError:
            return pids
        for entry in entries:  # on the agent: dockerd, containerd, systemd... by name, as they run now
            try:
                with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as handle:
                    comm = handle.read().strip()
            except OSError:
                continue
            if any(fnmatch.fnmatchcase(comm, n) for n in names):
                pids.add(int(entry))
        return pids

    def _h_ps(self, spec, label, args, call):
        """ps, whose BSD options (e), fallbacks (-auxe reads as auxe) and formats can print environments."""
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        self._check_operands(spec, label, parsed.operands)
        formats = [v.value for v in parsed.values("-o", "-O", "--format")]
        values = [w.value for w in args]
        for k, value in enumerate(values):
            if re.fullmatch(r"-[A-Za-z]+", value):
                # after a letter that takes a value, procps may re-read the whole cluster as BSD options
                cut = next((j for j, c in enumerate(value[1:]) if c in "oOpPuUgGtCqsk"), len(value))
                if "e" in value[cut + 2:]:
                    raise _denial("secrets", f"{label} {value}: may be read as the BSD e option (environments)")
            elif not value.startswith("-") and re.fullmatch(r"[A-Za-z]+", value) and "o" in value.lower() \
                    and k + 1 < len(values):
                formats.append(values[k + 1])  # BSD o/O: the next word is a format
        if any(re.search(r"env", f, re.I) for f in formats):
            raise _denial("secrets", f"{label}: an output format with the environment is not allowed")
        return spec.get("category", "process_read")

    def _h_systemctl(self, spec, label, args, call):
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        if any("environment" in p.value.lower() for p in parsed.values("-p", "--property")):
            raise _denial("secrets", f"{label}: a unit's Environment may hold the agent's secrets")
        if not parsed.operands:
            return spec.get("category", "service_read")
        verb = parsed.operands[0]
        if verb.dynamic:
            raise _denial("unknowable", f"{label}: verb cannot be known statically")
        return self._systemd_verb(spec, label, verb.value, parsed.operands[1:])

    def _h_service(self, spec, label, args, call):
        values = [w.value for w in args]
        if values in (["--status-all"], ["--help"], ["--version"]):
            return spec.get("category", "service_read")
        systemctl = self._resolve_alias(self.p["executables"].get("systemctl") or {})
        if len(args) < 2 or not systemctl:
            raise _denial(None, f"not in policy: {label} {' '.join(values)}".rstrip())
        return self._systemd_verb(systemctl, label, values[1], args[:1])

    def _systemd_verb(self, spec, label, verb, units):
        if verb in spec.get("read_verbs", ()):
            return spec.get("category", "service_read")
        lifecycle = verb in spec.get("lifecycle_verbs", ())
        denied = spec.get("deny_verbs", {}).get(verb)
        if not lifecycle and not denied:
            raise _denial(None, f"not in policy: {label} {verb}")
        for unit in units:
            if unit.dynamic:
                raise _denial("unknowable", f"{label} {verb}: unit cannot be known statically: {unit.raw}")
            name = unit.value[:-8] if unit.value.endswith(".service") else unit.value
            for pattern, category in self.units:
                if _globs_overlap(name, pattern):
                    raise _denial(category, f"{label} {verb} {unit.value}: protected unit")
        if denied:
            raise _denial(denied, f"{label} {verb} is not allowed ({denied})")
        for unit in units:
            name = unit.value[:-8] if unit.value.endswith(".service") else unit.value
            if unit.glob or not re.fullmatch(r"[A-Za-z0-9_@:-][A-Za-z0-9_@:.-]*", name) or "." in name:
                raise _denial("system_change", f"{label} {verb}: only plain services may be started or stopped: {unit.value}")
        return "service_lifecycle"

    def _h_ip(self, spec, label, args, call):
        values, i = [w.value for w in args], 0
        while i < len(values) and values[i].startswith("-"):
            option = values[i][1:] if values[i].startswith("--") else values[i]  # ip reads --batch as -batch
            if len(option) >= 2 and "-batch".startswith(option) or len(option) >= 3 and "-force".startswith(option):
                raise _denial("system_change", f"{label} {option}: batch mode and -force are not allowed")
            takes_value = any(len(option) >= 2 and name.startswith(option)
                              for name in ("-family", "-netns", "-loops", "-rcvbuf"))
            i += 2 if takes_value else 1
        rest = values[i:]
        if len(rest) >= 2 and rest[1] not in spec.get("read_actions", ()):
            allowed = "/".join(spec.get("read_actions", ()))
            raise _denial("system_change", f"{label} {rest[0]} {rest[1]}: only {allowed} are allowed")
        return spec.get("category", "network_read")

    def _h_curl(self, spec, label, args, call):
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        for name, value in parsed.flags:
            if name in ("-O", "--remote-name", "--remote-name-all") and not parsed.values("--output-dir"):
                self._check_path(_Word("."), "scratch_dir", f"{label} {name}")  # writes into the cwd
            if value is None:
                continue
            if name in ("-w", "--write-out") and "%output{" in value.value:
                raise _denial("fs_write", f"{label}: --write-out %output writes files")
            source = _curl_file_argument(name, value.value)
            if source and source != "-":
                self._check_path(value.part(source), "read", f"{label} {name}")
        urls = parsed.operands + parsed.values("--url")
        if not urls:
            raise _denial(None, f"{label}: no URL given")
        for url in urls:
            self._check_url(url, label)
        return spec.get("category", "http_loopback")

    def _h_wget(self, spec, label, args, call):
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        names = parsed.names()
        if not names & {"-O", "--output-document", "--spider", "-P", "--directory-prefix"}:
            self._check_path(_Word("."), "scratch_dir", label)  # saves the download into the cwd
        if not parsed.operands:
            raise _denial(None, f"{label}: no URL given")
        for url in parsed.operands:
            self._check_url(url, label)
        return spec.get("category", "http_loopback")

    def _check_url(self, word, label):
        url = word.value
        if any(c in url for c in "{}\\@ \t\r\n"):
            raise _denial("network", f"{label}: URL not allowed (globbing, credentials or whitespace): {url}")
        if "://" not in url:
            url = "http://" + url
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)  # ValueError when malformed
            bad_port = parts.port == 0
        except ValueError:
            port, bad_port = 0, True
        if bad_port:
            raise _denial("network", f"{label}: URL not understood: {word.value}")
        if parts.scheme.lower() not in ("http", "https"):
            raise _denial("network", f"{label}: URL scheme not allowed: {parts.scheme}")
        if not self._is_loopback(host):
            raise _denial("network", f"{label} may only reach loopback addresses, not {host or word.value}")
        denied = self.p["loopback_denied_ports"].get(str(port))
        if denied:
            raise _denial(denied, f"{label}: port {port} is not allowed ({denied})")

    def _is_loopback(self, host):
        host = host.rstrip(".").lower()
        if host in self.p["loopback_hosts"]:
            return True
        if not re.fullmatch(r"[0-9a-fx.:]+", host):
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            try:  # 127.1, 0x7f000001, 2130706433: what inet_aton (and curl) accept
                address = ipaddress.ip_address(socket.inet_ntoa(socket.inet_aton(host)))
            except (OSError, ValueError):
                return False
        return address.is_loopback or address.is_unspecified

    def _h_docker(self, spec, label, args, call):
        """docker: the subcommand must be in the Docker operations table shared with the agent's filtered Docker
        API (_docker_access.py), then the policy's own argument checks apply."""
        words = ["compose"] if label == "docker-compose" else []
        for word in args:
            if word.dynamic or word.glob:
                if not self._docker_subcommand_known(words):
                    raise _denial("unknowable", f"{label}: subcommand cannot be known statically: {word.shown()}")
                break
            words.append(word.value)
        if call.unknown_tail and not self._docker_subcommand_known(words):
            raise _denial("unknowable", f"{label} without a subcommand behind xargs runs one read from stdin")
        kind, reason = cli_subcommand_kind(words)
        if kind is None:
            raise _denial("docker_api", reason)
        return self._generic(spec, label, args, call)

    @staticmethod
    def _docker_subcommand_known(words):
        """Do these words name the whole subcommand (`ps`, or `container ls` after a management command)?"""
        names, skip = [], False
        for word in words:
            if skip or word.startswith("-"):
                skip = not skip and word in ("-l", "--log-level")
                continue
            names.append(word)
        return bool(names) and (names[0] not in DOCKER_MANAGEMENT or len(names) >= 2)

    def _h_docker_run(self, spec, label, args, call):
        parsed = _parse_options(args, spec, stop_at_operand=True)
        self._check_flags(spec, label, parsed)
        host_namespaces = set(spec.get("host_namespace_flags", ()))
        entrypoint = None
        for name, value in parsed.flags:
            text = value.value if value is not None else ""
            if name in host_namespaces and text.lower() == "host":
                raise _denial("docker_escape", f"{label} {name}=host shares a host namespace")
            if name == "--security-opt" and text not in spec.get("security_opt_allow", ()):
                raise _denial("docker_escape", f"{label} --security-opt {text} weakens container isolation")
            if name in ("-v", "--volume") and value is not None:
                self._docker_volume(value, label, spec.get("bind_source_rule", "scratch"))
            if name == "--mount" and value is not None:
                self._docker_mount(value, label, spec.get("bind_source_rule", "scratch"))
            if name == "--entrypoint":
                entrypoint = value
        if not parsed.operands:
            raise _denial(None, f"{label}: no image given")
        image, command = parsed.operands[0], parsed.operands[1:]
        if entrypoint is not None and entrypoint.value:
            command = [entrypoint] + command
        if command:  # the container's command obeys the same policy
            self._nested_argv(command, f"{label} {image.value}", cwds=["/"])
        return spec.get("category", "docker_run")

    def _docker_volume(self, word, label, rule):
        source = word.value.split(":")[0] if ":" in word.value else None
        if source is None:
            return  # an anonymous volume: only a container path
        if source.startswith(("/", ".", "~")):
            self._check_path(word.part(source), rule, f"{label} bind mount", "docker_escape", classify=False)
        elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", source):
            raise _denial("docker_escape", f"{label}: volume source not understood: {source}")

    def _docker_mount(self, word, label, rule):
        try:
            fields = next(csv.reader([word.value]))
        except (csv.Error, StopIteration):
            raise _denial("docker_escape", f"{label}: --mount not understood: {word.value}") from None
        options = {}
        for field in fields:
            key, value = field.partition("=")[::2]
            options[key.strip().lower()] = value
        mount_type = options.get("type", "volume")
        if any(k.startswith("volume-opt") or k == "volume-driver" for k in options):
            raise _denial("docker_escape", f"{label}: volume driver options can bind any host path")
        if mount_type == "bind":
            source = options.get("source") or options.get("src") or ""
            self._check_path(word.part(source or "/"), rule, f"{label} bind mount", "docker_escape", classify=False)
        elif mount_type not in ("volume", "tmpfs"):
            raise _denial("docker_escape", f"{label}: mount type not allowed: {mount_type}")

    def _h_docker_exec(self, spec, label, args, call):
        parsed = _parse_options(args, spec, stop_at_operand=True)
        self._check_flags(spec, label, parsed)
        workdir = "/"
        for name, value in parsed.flags:
            if name in ("-u", "--user") and value is not None \
                    and value.value.split(":")[0] in spec.get("root_users", ()):
                raise _denial("docker_escape", f"{label} --user {value.value}: running as root in the container is not allowed")
            if name in ("-w", "--workdir") and value is not None:
                workdir = value.value
        if len(parsed.operands) < 2:
            raise _denial(None, f"{label}: needs a container and a command")
        container = parsed.operands[0].value
        self._nested_argv(parsed.operands[1:], f"{label} {container}", cwds=[_normpath(posixpath.join("/", workdir))])
        return spec.get("category", "docker_exec")

    def _h_docker_cp(self, spec, label, args, call):
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        if len(parsed.operands) != 2:
            raise _denial(None, f"{label}: needs a source and a destination")
        source, target = parsed.operands

        def in_container(word):
            return re.match(r"[A-Za-z0-9][A-Za-z0-9_.-]*:", word.value) is not None

        if in_container(source) == in_container(target):
            raise _denial(None, f"{label}: exactly one side must be a container path (container:path)")
        if in_container(source) and target.value != "-":
            self._check_path(target, "scratch_dir", label, "fs_write")
        elif in_container(target) and source.value != "-":
            self._check_path(source, "read_tree", label)
        return spec.get("category", "docker_copy")


def _curl_file_argument(name, value):
    """The file a curl option reads (-d @file, -F name=@file, -H @file, -b file, -w @file), or None."""
    if name in ("-d", "--data", "--data-binary", "--data-ascii", "--json", "-H", "--header", "-w", "--write-out"):
        return value[1:] if value.startswith("@") else None
    if name == "--data-urlencode":
        match = re.match(r"[^=@]*@(.*)", value)
        return match.group(1) if match else None
    if name in ("-F", "--form"):
        match = re.match(r"[^=]*=[@<]([^;]*)", value)
        return match.group(1) if match else None
    if name in ("-b", "--cookie"):
        return None if "=" in value else value
    return None
