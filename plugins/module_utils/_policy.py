# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# The command safety policy of DTMA: one pure-Python file, used by the agent (dtma_agent.policy) and by
# the Ansible modules (as collection module_utils).
#
# How a command is judged:
#   1. bashlex parses the string (a real shell parser; anything it cannot parse is denied).
#   2. Every simple command is found: in pipelines, lists, subshells, groups, $(...), `...`, <(...), and
#      recursively inside `sh -c '...'`, `docker exec ctr ...`, `find -exec ...`, `flock -c '...'`.
#   3. Each word's value is computed by this file's own quote-aware scanner; a word whose value depends on
#      the runtime (variables, substitutions, brace expansion, a leading glob) is "dynamic": never a command
#      name, never a checked path, never an argument of a command whose arguments matter.
#   4. Wrappers (env, timeout, nice, xargs, ...) are peeled off to reach the executable that really runs.
#   5. The executable is looked up in the policy data: deny_executables first (deny wins), then executables
#      (an argument grammar per command); anything else is `not in policy: <name>` (default deny).
#   6. Paths are normalised (and, on the agent, resolved with realpath) and checked: reads never touch a
#      secret, writes stay inside the scratch dirs, protected paths name the category of a denial.

import csv
import fnmatch
import importlib.util
import ipaddress
import json
import os
import posixpath
import re
import socket
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

# bashlex is imported on first parse (about 5 MB an agent that never runs a command does not need)
HAS_BASHLEX = importlib.util.find_spec("bashlex") is not None
BASHLEX_IMPORT_ERROR = None if HAS_BASHLEX else "ModuleNotFoundError: No module named 'bashlex'"

try:
    import yaml
    HAS_YAML = True
except ImportError:
    yaml = None
    HAS_YAML = False


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
                      kill ip awk sed find tar curl wget dd copy chmod chown jq cd shell_vars
  same_as             "docker ps": use that spec
  forms               [[arg, ...]]: argv must start with one of these (python3 -m json.tool)
  value_flags         options that take a value; opt_value_flags: options whose value is only attached
  deny_flags          {option: category}; allow_flags: [options] (others are denied)
  path_flags          {option: path rule} for option values
  path_rule           path rule for every operand, or a list of rules, one per operand
  recursive_flags     options that make a read rule read_tree; read_only_flags: make a write rule read
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
# The shipped default policy, as data (see POLICY_SCHEMA above).
# ---------------------------------------------------------------------------------------------------------
DEFAULT_POLICY = {
    "version": 1,
    "description": "DTMA default: routine diagnostics, Docker operations and scratch-dir housekeeping; everything else is denied.",
    "scratch_dirs": ["/tmp", "/var/tmp"],
    "trusted_bin_dirs": ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"],
    "write_ok_paths": ["/dev/null", "/dev/stdout", "/dev/stderr"],
    "secret_paths": [
        "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/security/opasswd",
        "/etc/dtma", "/etc/ssh/ssh_host_*_key", "/etc/ssl/private", "/etc/letsencrypt", "*/ssl/*.key",
        "*/.env", "*/.env.*",
        "/root/.ssh", "/home/*/.ssh", "*/.ssh/id_*",
        "*/.docker/config.json", "*/.aws", "*/.kube", "*/.netrc", "*/.git-credentials", "*/.pgpass",
        "*/.config/gcloud", "*/.azure", "*/.bash_history", "*/.zsh_history", "*/.python_history",
        "/proc/*/environ", "/proc/*/mem", "/proc/*/root", "/proc/*/cwd", "/proc/*/fd", "/proc/*/map_files",
        "/proc/kcore", "/dev/fd", "/dev/mem", "/dev/kmem", "/dev/port",
        "/run/secrets", "/var/run/secrets", "/var/lib/docker/containers/*/config.v2.json",
        "/var/lib/cloud/instance/user-data*", "/var/lib/cloud/instances/*/user-data*",
    ],
    "secret_exceptions": ["*.pub"],
    "endless_sources": ["/dev/zero", "/dev/urandom", "/dev/random", "/dev/full"],
    "protected_paths": {
        "block_device": ["/dev/sd*", "/dev/hd*", "/dev/vd*", "/dev/xvd*", "/dev/nvme*", "/dev/mmcblk*", "/dev/dm-*",
                         "/dev/md*", "/dev/loop*", "/dev/nbd*", "/dev/sr*", "/dev/mapper", "/dev/disk", "/dev/root",
                         "/dev/mem", "/dev/kmem", "/dev/port"],
        "power": ["/proc/sysrq-trigger", "/sys/power"],
        "reverse_shell": ["/dev/tcp", "/dev/udp"],
        "privilege": ["/etc/sudoers", "/etc/sudoers.d", "/etc/passwd", "/etc/passwd-", "/etc/shadow", "/etc/group",
                      "/etc/gshadow", "/etc/pam.d", "/etc/security", "/etc/ld.so.preload", "/etc/ld.so.conf",
                      "/etc/ld.so.conf.d", "/etc/subuid", "/etc/subgid", "/etc/doas.conf", "/etc/polkit-1"],
        "persistence": ["*/.ssh", "*/authorized_keys*", "/etc/cron*", "/var/spool/cron", "/etc/anacrontab",
                        "/var/spool/at*", "/etc/systemd", "/lib/systemd", "/usr/lib/systemd", "/run/systemd",
                        "*/.config/systemd", "*/.config/autostart", "*/.bashrc", "*/.bash_profile", "*/.bash_login",
                        "*/.bash_logout", "*/.profile", "*/.zshrc", "*/.zprofile", "*/.zshenv", "/etc/profile",
                        "/etc/profile.d", "/etc/bash.bashrc", "/etc/bashrc", "/etc/environment", "/etc/rc.local",
                        "/etc/rc*.d", "/etc/init.d", "/etc/init", "/etc/xdg/autostart", "/etc/update-motd.d",
                        "/etc/udev/rules.d", "/etc/modules-load.d", "/etc/modprobe.d", "/etc/apt/apt.conf.d",
                        "/etc/dtma"],
        "log_tampering": ["/var/log", "/run/log", "/etc/audit", "/etc/rsyslog*", "/etc/logrotate*",
                          "*/.bash_history", "*/.zsh_history"],
        "docker_escape": ["/var/run/docker.sock", "/run/docker.sock", "/var/run/docker", "/run/docker",
                          "/run/containerd", "/etc/docker"],
        "system_change": ["/proc/sys", "/sys", "/boot"],
    },
    "protected_units": {
        "dtma*": "protected_process", "docker*": "protected_process", "containerd*": "protected_process",
        "ssh*": "protected_process", "systemd-journald*": "log_tampering", "systemd-*": "protected_process",
        "dbus*": "protected_process", "networking*": "protected_process", "NetworkManager*": "protected_process",
        "rsyslog*": "log_tampering", "syslog*": "log_tampering", "auditd*": "log_tampering",
        "ufw*": "firewall", "firewalld*": "firewall", "nftables*": "firewall", "netfilter-persistent*": "firewall",
        "iptables*": "firewall", "apparmor*": "docker_escape",
        "rescue*": "power", "emergency*": "power", "reboot*": "power", "poweroff*": "power", "halt*": "power",
        "kexec*": "power", "shutdown*": "power", "ctrl-alt-del*": "power", "suspend*": "power", "hibernate*": "power",
        "hybrid-sleep*": "power", "sleep*": "power",
    },
    "protected_process_names": ["systemd", "init", "dockerd", "containerd", "containerd-shim*", "docker-proxy",
                                "dtma*", "sshd"],
    "env_vars": {
        "allow": ["LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "COLUMNS", "LINES", "NO_COLOR", "SYSTEMD_COLORS"],
        "deny": {"HIST*": "log_tampering", "LD_*": "code_execution", "PATH": "code_execution",
                 "BASH_ENV": "code_execution", "ENV": "code_execution", "PROMPT_COMMAND": "code_execution",
                 "PS4": "code_execution", "SHELLOPTS": "code_execution", "*PAGER": "code_execution",
                 "EDITOR": "code_execution", "VISUAL": "code_execution", "LESSOPEN": "code_execution",
                 "LESSCLOSE": "code_execution", "TAR_OPTIONS": "code_execution", "PYTHON*": "code_execution",
                 "PERL5*": "code_execution", "NODE_OPTIONS": "code_execution", "DOCKER_HOST": "docker_escape",
                 "DOCKER_CONTEXT": "docker_escape", "DOCKER_CONFIG": "docker_escape", "*_PROXY": "network",
                 "*_proxy": "network"},
    },
    "readable_variables": ["HOME", "USER", "LOGNAME", "HOSTNAME", "SHELL", "PATH", "LANG", "LC_*", "TERM", "TZ",
                           "UID", "EUID", "PPID", "RANDOM", "SECONDS", "LINENO", "?", "$", "#"],
    "downloaders": ["curl", "wget"],
    "deny_substrings": {"/dev/tcp/": "reverse_shell", "/dev/udp/": "reverse_shell", "/inet/tcp/": "reverse_shell",
                        "/inet/udp/": "reverse_shell", "/inet4/": "reverse_shell", "/inet6/": "reverse_shell"},
    "disk_fill_limit_bytes": 1073741824,
    "loopback_hosts": ["localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"],
    "loopback_denied_ports": {"2375": "docker_escape", "2376": "docker_escape"},
    "deny_executables": {
        # power
        "shutdown": "power", "reboot": "power", "halt": "power", "poweroff": "power", "init": "power",
        "telinit": "power", "kexec": "power", "rtcwake": "power", "systemd-shutdown": "power",
        # filesystem destruction and raw block devices
        "shred": "fs_destruction", "wipefs": "fs_destruction", "mkfs*": "fs_destruction", "mke2fs": "fs_destruction",
        "mkswap": "fs_destruction", "mkdosfs": "fs_destruction", "chattr": "fs_destruction", "srm": "fs_destruction",
        "fdisk": "block_device", "sfdisk": "block_device", "cfdisk": "block_device", "gdisk": "block_device",
        "sgdisk": "block_device", "parted": "block_device", "blkdiscard": "block_device", "hdparm": "block_device",
        "badblocks": "block_device", "losetup": "block_device", "cryptsetup": "block_device",
        "dmsetup": "block_device", "debugfs": "block_device", "fsck*": "block_device", "e2fsck": "block_device",
        "tune2fs": "block_device", "resize2fs": "block_device", "lvremove": "block_device", "vgremove": "block_device",
        "pvremove": "block_device",
        # privilege and accounts
        "sudo": "privilege", "su": "privilege", "doas": "privilege", "pkexec": "privilege", "runuser": "privilege",
        "setpriv": "privilege", "capsh": "privilege", "passwd": "privilege", "chpasswd": "privilege",
        "chage": "privilege", "useradd": "privilege", "adduser": "privilege", "usermod": "privilege",
        "userdel": "privilege", "deluser": "privilege", "groupadd": "privilege", "addgroup": "privilege",
        "groupmod": "privilege", "groupdel": "privilege", "delgroup": "privilege", "gpasswd": "privilege",
        "newgrp": "privilege", "sg": "privilege", "visudo": "privilege", "vipw": "privilege", "vigr": "privilege",
        "setcap": "privilege", "setfacl": "privilege", "chsh": "privilege", "chfn": "privilege",
        "newusers": "privilege",
        # reverse shells and raw sockets
        "nc": "reverse_shell", "nc.*": "reverse_shell", "ncat": "reverse_shell", "netcat": "reverse_shell",
        "socat": "reverse_shell", "telnet": "reverse_shell", "mkfifo": "reverse_shell", "mknod": "reverse_shell",
        "cryptcat": "reverse_shell", "pwncat": "reverse_shell", "xterm": "reverse_shell", "openssl": "reverse_shell",
        # network egress
        "ssh": "network", "scp": "network", "sftp": "network", "rsync": "network", "ftp": "network",
        "tftp": "network", "sshpass": "network", "rsh": "network", "rlogin": "network", "rcp": "network",
        "lftp": "network", "smbclient": "network", "aria2c": "network",
        # persistence
        "crontab": "persistence", "at": "persistence", "batch": "persistence", "atrm": "persistence",
        "systemd-run": "persistence", "update-rc.d": "persistence", "chkconfig": "persistence",
        "loginctl": "persistence",
        # firewall
        "iptables-*": "firewall", "ip6tables-*": "firewall", "ebtables*": "firewall", "arptables*": "firewall",
        "xtables*": "firewall", "firewall-cmd": "firewall", "firewall-offline-cmd": "firewall",
        # log and audit tampering
        "history": "log_tampering", "auditctl": "log_tampering", "augenrules": "log_tampering",
        "logrotate": "log_tampering", "logger": "log_tampering",
        # system changes
        "umount": "system_change", "insmod": "system_change", "modprobe": "system_change", "rmmod": "system_change",
        "depmod": "system_change", "kmod": "system_change", "swapoff": "system_change", "swapon": "system_change",
        "hwclock": "system_change", "apt-get": "system_change", "aptitude": "system_change",
        "dpkg-reconfigure": "system_change", "yum": "system_change", "dnf": "system_change", "rpm": "system_change",
        "zypper": "system_change", "apk": "system_change", "snap": "system_change", "pip": "system_change",
        "pip3": "system_change", "pipx": "system_change", "npm": "system_change", "gem": "system_change",
        "update-alternatives": "system_change", "ldconfig": "system_change", "ifdown": "system_change",
        "ifup": "system_change", "nmcli": "system_change", "netplan": "system_change", "ln": "fs_write",
        # container and namespace escapes
        "nsenter": "docker_escape", "unshare": "docker_escape", "chroot": "docker_escape",
        "pivot_root": "docker_escape", "switch_root": "docker_escape", "ctr": "docker_escape",
        "runc": "docker_escape", "crictl": "docker_escape", "nerdctl": "docker_escape", "dockerd": "docker_escape",
        "containerd": "docker_escape", "systemd-nspawn": "docker_escape", "machinectl": "docker_escape",
        # processes selected by pattern can hit the agent, dockerd or PID 1
        "pkill": "protected_process", "killall": "protected_process", "killall5": "protected_process",
        "skill": "protected_process",
        # code from strings, files or stdin: cannot be checked
        "eval": "unknowable", "source": "unknowable", ".": "unknowable", "trap": "unknowable",
        "alias": "unknowable", "unalias": "unknowable", "fish": "unknowable", "csh": "unknowable",
        "tcsh": "unknowable", "enable": "code_execution", "hash": "code_execution", "fc": "code_execution",
        "perl*": "code_execution", "ruby*": "code_execution", "irb": "code_execution", "node": "code_execution",
        "nodejs": "code_execution", "deno": "code_execution", "bun": "code_execution", "php*": "code_execution",
        "lua*": "code_execution", "tclsh*": "code_execution", "wish": "code_execution", "expect": "code_execution",
        "Rscript": "code_execution", "julia": "code_execution", "pwsh": "code_execution",
        "gdb": "code_execution", "lldb": "code_execution", "strace": "code_execution", "ltrace": "code_execution",
        "script": "code_execution", "unbuffer": "code_execution", "make": "code_execution", "git": "code_execution",
        # interactive programs and detached sessions
        "vi": "interactive", "vim": "interactive", "view": "interactive", "vimdiff": "interactive",
        "nvim": "interactive", "nano": "interactive", "pico": "interactive", "emacs": "interactive",
        "ed": "interactive", "ex": "interactive", "joe": "interactive", "mcedit": "interactive",
        "watch": "interactive", "man": "interactive", "htop": "interactive", "tmux": "background",
        "screen": "background", "setsid": "background", "disown": "background",
        # the shell's and the agent's environment
        "printenv": "secrets",
        # disk filling
        "fallocate": "disk_fill", "yes": "disk_fill",
    },
    "wrappers": {
        "env": {"value_flags": ["-u", "--unset", "-C", "--chdir", "-S", "--split-string"],
                "deny_flags": {"-C": "unknowable", "--chdir": "unknowable", "-S": "unknowable",
                               "--split-string": "unknowable"},
                "assignments": True, "no_command": "secrets"},
        "nohup": {},
        "timeout": {"value_flags": ["-s", "--signal", "-k", "--kill-after"], "lead_operands": ["none"]},
        "nice": {"value_flags": ["-n", "--adjustment"]},
        "ionice": {"value_flags": ["-c", "--class", "-n", "--classdata", "-p", "--pid", "-P", "--pgid", "-u", "--uid"],
                   "deny_flags": {"-p": "system_change", "--pid": "system_change", "-P": "system_change",
                                  "--pgid": "system_change", "-u": "system_change", "--uid": "system_change"}},
        "stdbuf": {"value_flags": ["-i", "--input", "-o", "--output", "-e", "--error"]},
        "xargs": {"value_flags": ["-a", "--arg-file", "-d", "--delimiter", "-E", "-I", "-L", "-n", "--max-args",
                                  "-P", "--max-procs", "-s", "--max-chars", "--process-slot-var"],
                  "opt_value_flags": ["-i", "-l", "-e", "--replace", "--max-lines", "--eof"],
                  "deny_flags": {"-P": "fork_bomb", "--max-procs": "fork_bomb", "--process-slot-var": "unknowable"},
                  "path_flags": {"-a": "read", "--arg-file": "read"},
                  "appends_unknown_args": True, "replace_flags": ["-I", "-i", "--replace"]},
        "command": {"lookup_flags": ["-v", "-V"]},
        "builtin": {},
        "exec": {"value_flags": ["-a"]},
        "busybox": {},
        "time": {"value_flags": ["-f", "--format", "-o", "--output"],
                 "path_flags": {"-o": "scratch", "--output": "scratch"}},
        "flock": {"value_flags": ["-w", "--timeout", "-E", "--conflict-exit-code"], "lead_operands": ["scratch"],
                  "shell_flags": ["-c", "--command"]},
    },
    "executables": {
        # --- shell builtins and trivial commands ---------------------------------------------------------
        "echo": {"category": "output", "unknown_args": True},
        "printf": {"category": "output", "deny_flags": {"-v": "unknowable"}},
        "true": {"category": "builtin", "unknown_args": True},
        "false": {"category": "builtin", "unknown_args": True},
        ":": {"category": "builtin", "unknown_args": True},
        "test": {"category": "builtin", "unknown_args": True},
        "[": {"category": "builtin", "unknown_args": True},
        "pwd": {"category": "builtin", "unknown_args": True},
        "sleep": {"category": "builtin", "unknown_args": True},
        "which": {"category": "builtin", "unknown_args": True},
        "type": {"category": "builtin", "unknown_args": True},
        "basename": {"category": "builtin", "unknown_args": True},
        "dirname": {"category": "builtin", "unknown_args": True},
        "seq": {"category": "builtin", "number_limit": 1000000, "deny_as": "disk_fill",
                "value_flags": ["-f", "--format", "-s", "--separator"]},
        "cd": {"handler": "cd", "category": "builtin"},
        "set": {"handler": "shell_vars", "category": "builtin"},
        "export": {"handler": "shell_vars"}, "declare": {"handler": "shell_vars"},
        "typeset": {"handler": "shell_vars"}, "readonly": {"handler": "shell_vars"},
        "local": {"handler": "shell_vars"}, "unset": {"handler": "shell_vars"},
        # --- system information ------------------------------------------------------------------------------
        "uptime": {"category": "system_read"}, "free": {"category": "system_read"},
        "nproc": {"category": "system_read"}, "uname": {"category": "system_read"},
        "arch": {"category": "system_read"}, "id": {"category": "system_read"},
        "whoami": {"category": "system_read"}, "groups": {"category": "system_read"},
        "who": {"category": "system_read"}, "w": {"category": "system_read"}, "users": {"category": "system_read"},
        "last": {"category": "system_read"}, "tty": {"category": "system_read"},
        "getconf": {"category": "system_read"}, "lsb_release": {"category": "system_read"},
        "pstree": {"category": "process_read"},
        "sar": {"category": "system_read", "value_flags": ["-o", "-f", "-s", "-e", "-i", "-P", "-n", "-I", "-q"],
                "path_flags": {"-o": "scratch", "-f": "read"}},
        "vmstat": {"category": "system_read"}, "iostat": {"category": "system_read"},
        "mpstat": {"category": "system_read"}, "lscpu": {"category": "system_read"},
        "lsblk": {"category": "system_read"}, "lsmem": {"category": "system_read"},
        "lspci": {"category": "system_read"}, "lsusb": {"category": "system_read"},
        "lsmod": {"category": "system_read"}, "findmnt": {"category": "system_read"},
        "blkid": {"category": "system_read"},
        "df": {"category": "system_read", "unknown_args": True},
        "du": {"category": "system_read",
               "value_flags": ["-d", "--max-depth", "-B", "--block-size", "-t", "--threshold", "--exclude", "-X", "--exclude-from",
                               "--files0-from"],
               "path_flags": {"-X": "read", "--exclude-from": "read", "--files0-from": "read"}, "path_rule": "list"},
        "hostname": {"category": "system_read", "max_operands": 0, "deny_as": "system_change",
                     "deny_flags": {"-F": "system_change", "--file": "system_change", "-b": "system_change",
                                    "--boot": "system_change"}},
        "date": {"category": "system_read", "value_flags": ["-d", "--date", "-f", "--file", "-r", "--reference", "-s", "--set"],
                 "opt_value_flags": ["-I", "--iso-8601", "--rfc-3339"],
                 "deny_flags": {"-s": "system_change", "--set": "system_change"},
                 "path_flags": {"-f": "read", "--file": "read", "-r": "list", "--reference": "list"},
                 "operand_regex": "\\+.*", "deny_as": "system_change"},
        "dmesg": {"category": "logs_read",
                  "value_flags": ["-f", "--facility", "-l", "--level", "-n", "--console-level", "-s", "--buffer-size",
                                  "-F", "--file", "--time-format"],
                  "deny_flags": {"-c": "log_tampering", "--read-clear": "log_tampering", "-C": "log_tampering",
                                 "--clear": "log_tampering", "-D": "system_change", "--console-off": "system_change",
                                 "-E": "system_change", "--console-on": "system_change", "-n": "system_change",
                                 "--console-level": "system_change"},
                  "path_flags": {"-F": "read", "--file": "read"}, "max_operands": 0},
        "timedatectl": {"category": "system_read",
                        "subcommands": {"status": {}, "show": {}, "list-timezones": {}, "timesync-status": {},
                                        "show-timesync": {}},
                        "deny_subcommands": {"set-time": "system_change", "set-timezone": "system_change",
                                             "set-local-rtc": "system_change", "set-ntp": "system_change"}},
        "hostnamectl": {"category": "system_read", "subcommands": {"status": {}},
                        "deny_subcommands": {"hostname": "system_change", "set-hostname": "system_change",
                                             "icon-name": "system_change", "chassis": "system_change",
                                             "deployment": "system_change", "location": "system_change"}},
        "systemd-analyze": {"category": "system_read",
                            "subcommands": {"time": {}, "blame": {}, "critical-chain": {"unknown_args": True}}},
        "getent": {"category": "system_read", "deny_operand_regex": {"g?shadow": "secrets"}},
        "sysctl": {"category": "system_read", "deny_as": "system_change",
                   "allow_flags": ["-a", "--all", "-A", "-X", "-n", "--values", "-N", "--names", "-e", "--ignore",
                                   "-q", "--quiet", "-r", "--pattern", "-b", "--binary", "-h", "--help", "-d"],
                   "value_flags": ["-r", "--pattern"], "deny_operand_regex": {".*=.*": "system_change"}},
        "mount": {"category": "system_read", "deny_as": "system_change", "allow_flags": ["-l", "--show-labels", "-t",
                                                                                         "--types"],
                  "value_flags": ["-t", "--types"], "max_operands": 0},
        "dpkg": {"category": "system_read", "deny_as": "system_change",
                 "allow_flags": ["-l", "--list", "-s", "--status", "-L", "--listfiles", "-S", "--search",
                                 "--get-selections", "-W", "--show", "--print-architecture", "--version"]},
        "apt": {"category": "system_read", "subcommands": {"list": {}, "show": {}, "search": {}, "policy": {}},
                "deny_subcommands": {"install": "system_change", "remove": "system_change", "purge": "system_change",
                                     "upgrade": "system_change", "full-upgrade": "system_change",
                                     "autoremove": "system_change", "update": "system_change",
                                     "reinstall": "system_change", "edit-sources": "system_change"}},
        "apt-cache": {"category": "system_read",
                      "subcommands": {"policy": {}, "show": {}, "search": {}, "madison": {}, "depends": {},
                                      "rdepends": {}}},
        # --- processes -----------------------------------------------------------------------------------------
        "ps": {"category": "process_read",
               "value_flags": ["-o", "-O", "--format", "-p", "--pid", "-u", "--user", "-U", "-g", "-G", "-C", "--sort",
                               "-t", "--ppid", "-q", "--cols", "--columns", "--rows", "--width"],
               "deny_operand_regex": {"[A-Za-z]*e[A-Za-z]*": "secrets"}},
        "top": {"category": "process_read", "value_flags": ["-d", "-n", "-p", "-u", "-U", "-o", "-w", "-E", "-e"]},
        "pgrep": {"category": "process_read",
                  "value_flags": ["-d", "--delimiter", "-g", "--pgroup", "-G", "--group", "-P", "--parent", "-s", "--session", "-t",
                                  "--terminal", "-u", "--euid", "-U", "--uid", "--ns", "--nslist"]},
        "pidof": {"category": "process_read"},
        "lsof": {"category": "process_read", "value_flags": ["-p", "-u", "-c", "-g", "-d", "-s", "-a"]},
        "kill": {"handler": "kill", "category": "process_signal"},
        # --- network diagnostics -----------------------------------------------------------------------------
        "ip": {"handler": "ip", "category": "network_read", "read_actions": ["show", "list", "lst", "get"]},
        "ss": {"category": "network_read", "value_flags": ["-f", "--family", "-A", "--query", "--socket", "-F",
                                                           "--filter", "-D", "--diag", "-N", "--net"],
               "deny_flags": {"-K": "system_change", "--kill": "system_change"},
               "path_flags": {"-D": "scratch", "--diag": "scratch", "-F": "read", "--filter": "read"}},
        "netstat": {"category": "network_read"},
        "ping": {"category": "network_read", "value_flags": ["-c", "-i", "-w", "-W", "-s", "-t", "-I", "-Q", "-l", "-M",
                                                             "-p", "-S"],
                 "deny_flags": {"-f": "dos", "-l": "dos"}},
        "ping6": {"same_as": "ping"},
        "traceroute": {"category": "network_read"}, "tracepath": {"category": "network_read"},
        "mtr": {"category": "network_read"},
        # the old net-tools and ethtool: read-only views only
        "ifconfig": {"category": "network_read", "deny_as": "system_change", "allow_flags": ["-a", "-s", "-v"],
                     "max_operands": 1},
        "route": {"category": "network_read", "deny_as": "system_change",
                  "allow_flags": ["-n", "--numeric", "-e", "--extend", "-v", "--verbose", "-4", "-6", "-F", "--fib", "-C",
                                  "--cache"], "max_operands": 0},
        "arp": {"category": "network_read", "deny_as": "system_change",
                "allow_flags": ["-a", "--all", "-n", "--numeric", "-e", "-v", "--verbose", "-i", "--device"],
                "value_flags": ["-i", "--device"], "max_operands": 1},
        "ethtool": {"category": "network_read", "deny_as": "system_change",
                    "allow_flags": ["-i", "--driver", "-k", "--show-features", "--show-offload", "-g", "--show-ring", "-a",
                                    "--show-pause", "-c", "--show-coalesce", "-S", "--statistics", "-T",
                                    "--show-time-stamping", "-l", "--show-channels", "-P", "--show-permaddr", "-m",
                                    "--dump-module-eeprom", "--module-info", "-h", "--help", "--version"],
                    "max_operands": 1},
        "dig": {"category": "network_read", "value_flags": ["-b", "-c", "-k", "-p", "-q", "-t", "-x", "-y", "-f"],
                "path_flags": {"-f": "read", "-k": "read"}},
        "nslookup": {"category": "network_read"}, "host": {"category": "network_read"},
        "curl": {"handler": "curl", "category": "http_loopback",
                 "value_flags": ["-o", "--output", "-T", "--upload-file", "-d", "--data", "--data-binary", "--data-raw",
                                 "--data-ascii", "--data-urlencode", "--json", "-F", "--form", "--form-string", "-H",
                                 "--header", "-X", "--request", "-u", "--user", "-A", "--user-agent", "-e", "--referer",
                                 "-b", "--cookie", "-c", "--cookie-jar", "-m", "--max-time", "--connect-timeout",
                                 "-w", "--write-out", "-r", "--range", "-D", "--dump-header", "--retry", "--retry-delay",
                                 "--retry-max-time", "--max-redirs", "--url", "--cacert", "--capath", "-E", "--cert",
                                 "--key", "--output-dir", "--stderr", "--trace", "--trace-ascii", "-K", "--config",
                                 "-x", "--proxy", "--preproxy", "--socks4", "--socks4a", "--socks5",
                                 "--socks5-hostname", "--resolve", "--connect-to", "--unix-socket",
                                 "--abstract-unix-socket", "--interface", "--dns-servers", "--doh-url", "--libcurl",
                                 "-U", "--proxy-user", "--limit-rate", "-Y", "--speed-limit", "-y", "--speed-time",
                                 "--expect100-timeout", "--keepalive-time", "--oauth2-bearer", "--proto",
                                 "--proto-redir", "--compressed-ssh"],
                 "allow_flags": ["-s", "--silent", "-S", "--show-error", "-f", "--fail", "--fail-with-body", "-v",
                                 "--verbose", "-i", "--include", "-I", "--head", "-k", "--insecure", "-L", "--location",
                                 "-o", "--output", "-O", "--remote-name", "-T", "--upload-file", "-d", "--data",
                                 "--data-binary", "--data-raw", "--data-ascii", "--data-urlencode", "--json", "-F",
                                 "--form", "--form-string", "-H", "--header", "-X", "--request", "-u", "--user", "-A",
                                 "--user-agent", "-e", "--referer", "-b", "--cookie", "-c", "--cookie-jar", "-m",
                                 "--max-time", "--connect-timeout", "-w", "--write-out", "-r", "--range", "-D",
                                 "--dump-header", "--retry", "--retry-delay", "--retry-max-time",
                                 "--retry-connrefused", "--max-redirs", "--url", "--cacert", "--capath", "-E", "--cert",
                                 "--key", "-G", "--get", "-N", "--no-buffer", "--compressed", "-#", "--progress-bar",
                                 "--no-progress-meter", "-4", "--ipv4", "-6", "--ipv6", "--http1.0", "--http1.1",
                                 "--http2", "--http2-prior-knowledge", "-g", "--globoff", "-q", "--disable",
                                 "-Z", "--parallel", "-z", "--time-cond", "--raw", "-j", "--junk-session-cookies",
                                 "--tr-encoding", "--path-as-is", "--limit-rate", "--oauth2-bearer", "--proto",
                                 "--proto-redir", "-Y", "--speed-limit", "-y", "--speed-time", "--expect100-timeout",
                                 "--keepalive-time", "--no-keepalive", "--tcp-nodelay", "--stderr", "--trace",
                                 "--trace-ascii", "--trace-time", "-h", "--help", "-V", "--version", "--output-dir",
                                 "--create-dirs", "-C", "--continue-at", "-R", "--remote-time", "--no-sessionid",
                                 "--tlsv1.2", "--tlsv1.3", "--ssl-reqd", "--location-trusted", "--unix-socket"],
                 "deny_flags": {"-K": "unknowable", "--config": "unknowable", "--abstract-unix-socket": "docker_escape", "-x": "network", "--proxy": "network",
                                "--preproxy": "network", "--socks4": "network", "--socks4a": "network",
                                "--socks5": "network", "--socks5-hostname": "network", "--resolve": "network",
                                "--connect-to": "network", "--libcurl": "fs_write", "--doh-url": "network",
                                "--dns-servers": "network", "--interface": "network"},
                 "path_flags": {"-o": "scratch", "--output": "scratch", "-T": "read", "--upload-file": "read",
                                "-c": "scratch", "--cookie-jar": "scratch", "-D": "scratch", "--dump-header": "scratch",
                                "--cacert": "read", "--capath": "read", "-E": "read", "--cert": "read", "--key": "read",
                                "--output-dir": "scratch_dir", "--stderr": "scratch", "--trace": "scratch",
                                "--trace-ascii": "scratch", "--unix-socket": "scratch"}},
        "wget": {"handler": "wget", "category": "http_loopback",
                 "value_flags": ["-O", "--output-document", "-o", "--output-file", "-a", "--append-output", "-P",
                                 "--directory-prefix", "-i", "--input-file", "-e", "--execute", "--config", "-U",
                                 "--user-agent", "--header", "--post-data", "--post-file", "--body-data", "--body-file",
                                 "--method", "-T", "--timeout", "-t", "--tries", "--user", "--password",
                                 "--http-user", "--http-password", "--ca-certificate", "--certificate",
                                 "--private-key", "--load-cookies", "--save-cookies", "-w", "--wait", "-Q", "--quota",
                                 "--limit-rate", "-B", "--base", "--max-redirect", "--dns-timeout",
                                 "--connect-timeout", "--read-timeout", "-e", "--bind-address", "--use-askpass"],
                 "allow_flags": ["-O", "--output-document", "-o", "--output-file", "-a", "--append-output", "-P",
                                 "--directory-prefix", "-U", "--user-agent", "--header", "--post-data", "--post-file",
                                 "--body-data", "--body-file", "--method", "-T", "--timeout", "-t", "--tries",
                                 "--user", "--password", "--http-user", "--http-password", "--ca-certificate",
                                 "--certificate", "--private-key", "--load-cookies", "--save-cookies", "-w", "--wait",
                                 "-Q", "--quota", "--limit-rate", "--max-redirect", "--dns-timeout",
                                 "--connect-timeout", "--read-timeout", "-q", "--quiet", "-v", "--verbose", "-nv",
                                 "--no-verbose", "-S", "--server-response", "--spider", "--no-check-certificate",
                                 "-c", "--continue", "-N", "--timestamping", "-nc", "--no-clobber", "-4",
                                 "--inet4-only", "-6", "--inet6-only", "--content-on-error", "-h", "--help", "-V",
                                 "--version", "-n"],
                 "deny_flags": {"-i": "unknowable", "--input-file": "unknowable", "-e": "unknowable",
                                "--execute": "unknowable", "--config": "unknowable", "-b": "background",
                                "--background": "background", "--use-askpass": "code_execution",
                                "--bind-address": "network"},
                 "path_flags": {"-O": "scratch", "--output-document": "scratch", "-o": "scratch",
                                "--output-file": "scratch", "-a": "scratch", "--append-output": "scratch",
                                "-P": "scratch_dir", "--directory-prefix": "scratch_dir", "--post-file": "read",
                                "--body-file": "read", "--ca-certificate": "read", "--certificate": "read",
                                "--private-key": "read", "--load-cookies": "read", "--save-cookies": "scratch"}},
        # --- reading files -----------------------------------------------------------------------------------------
        "cat": {"category": "read", "path_rule": "read"},
        "tac": {"category": "read", "path_rule": "read"},
        "nl": {"category": "read", "path_rule": "read", "value_flags": ["-b", "-d", "-f", "-h", "-i", "-l", "-n", "-s", "-v", "-w"]},
        "rev": {"category": "read", "path_rule": "read"},
        "fold": {"category": "read", "path_rule": "read", "value_flags": ["-w", "--width"]},
        "fmt": {"category": "read", "path_rule": "read", "value_flags": ["-w", "--width", "-g", "--goal", "-p", "--prefix"]},
        "expand": {"category": "read", "path_rule": "read", "value_flags": ["-t", "--tabs"]},
        "unexpand": {"category": "read", "path_rule": "read", "value_flags": ["-t", "--tabs"]},
        "paste": {"category": "read", "path_rule": "read", "value_flags": ["-d", "--delimiters"]},
        "strings": {"category": "read", "path_rule": "read", "value_flags": ["-n", "--bytes", "-t", "--radix", "-e", "--encoding"]},
        "od": {"category": "read", "path_rule": "read",
               "value_flags": ["-A", "--address-radix", "-j", "--skip-bytes", "-N", "--read-bytes", "-t", "--format", "-w", "--width",
                               "-S", "--strings"]},
        "hexdump": {"category": "read", "path_rule": "read", "value_flags": ["-n", "-s", "-e", "-f"],
                    "path_flags": {"-f": "read"}},
        "xxd": {"category": "read", "path_rule": ["read", "scratch"],
                "value_flags": ["-c", "-cols", "-g", "-l", "-len", "-s", "-seek", "-o", "-n"]},
        "head": {"category": "read", "path_rule": "read", "value_flags": ["-n", "--lines", "-c", "--bytes"]},
        "tail": {"category": "read", "path_rule": "read",
                 "value_flags": ["-n", "--lines", "-c", "--bytes", "-s", "--sleep-interval", "--pid", "--max-unchanged-stats"]},
        "less": {"category": "read", "path_rule": "read",
                 "value_flags": ["-b", "-h", "-j", "-p", "-P", "-t", "-T", "-x", "-y", "-z", "-o", "-O", "-k",
                                 "--log-file", "--LOG-FILE", "--lesskey-file", "--lesskey-src"],
                 "deny_flags": {"-o": "fs_write", "-O": "fs_write", "--log-file": "fs_write",
                                "--LOG-FILE": "fs_write", "-k": "code_execution", "--lesskey-file": "code_execution",
                                "--lesskey-src": "code_execution"},
                 "deny_operand_regex": {"\\+(?!([FGg]|[0-9]+|/[^!|\n]*)$).*": "code_execution"}},
        "more": {"category": "read", "path_rule": "read", "deny_operand_regex": {"\\+.*!.*": "code_execution"}},
        "grep": {"category": "read", "path_rule": "read", "pattern_operand": True,
                 "pattern_flags": ["-e", "--regexp", "-f", "--file"],
                 "value_flags": ["-e", "--regexp", "-f", "--file", "-m", "--max-count", "-A", "--after-context", "-B",
                                 "--before-context", "-C", "--context", "--label", "--include", "--exclude",
                                 "--exclude-dir", "--exclude-from", "-d", "--directories", "-D", "--devices",
                                 "--binary-files", "--group-separator"],
                 "path_flags": {"-f": "read", "--file": "read", "--exclude-from": "read"},
                 "recursive_flags": ["-r", "-R", "--recursive", "--dereference-recursive", "-d", "--directories"]},
        "egrep": {"same_as": "grep"},
        "fgrep": {"same_as": "grep"},
        "zgrep": {"same_as": "grep"},
        "rgrep": {"category": "read", "path_rule": "read_tree", "pattern_operand": True,
                  "pattern_flags": ["-e", "--regexp", "-f", "--file"],
                  "value_flags": ["-e", "--regexp", "-f", "--file", "-m", "--max-count", "-A", "-B", "-C", "--include",
                                  "--exclude", "--exclude-dir"],
                  "path_flags": {"-f": "read", "--file": "read"}},
        "zcat": {"category": "read", "path_rule": "read"},
        "bzcat": {"category": "read", "path_rule": "read"},
        "xzcat": {"category": "read", "path_rule": "read"},
        "zstdcat": {"category": "read", "path_rule": "read"},
        "zless": {"category": "read", "path_rule": "read"},
        "zmore": {"category": "read", "path_rule": "read"},
        "wc": {"category": "read", "path_rule": "read", "value_flags": ["--files0-from"],
               "path_flags": {"--files0-from": "read"}},
        "sort": {"category": "read", "path_rule": "read",
                 "value_flags": ["-k", "--key", "-t", "--field-separator", "-o", "--output", "-S", "--buffer-size", "-T",
                                 "--temporary-directory", "--parallel", "--batch-size", "--files0-from",
                                 "--random-source", "--compress-program"],
                 "deny_flags": {"--compress-program": "code_execution"},
                 "path_flags": {"-o": "scratch", "--output": "scratch", "-T": "scratch_dir",
                                "--temporary-directory": "scratch_dir", "--files0-from": "read",
                                "--random-source": "read"}},
        "uniq": {"category": "read", "path_rule": ["read", "scratch"],
                 "value_flags": ["-f", "--skip-fields", "-s", "--skip-chars", "-w", "--check-chars"]},
        "cut": {"category": "read", "path_rule": "read",
                "value_flags": ["-b", "--bytes", "-c", "--characters", "-d", "--delimiter", "-f", "--fields",
                                "--output-delimiter"]},
        "tr": {"category": "read", "max_operands": 2},
        "column": {"category": "read", "path_rule": "read",
                   "value_flags": ["-s", "--separator", "-o", "--output-separator", "-c", "--output-width", "-N",
                                   "--table-columns", "-R", "--table-right", "-H", "--table-hide", "-O",
                                   "--table-order", "-E", "--table-noextreme", "-W", "--table-wrap", "-n",
                                   "--table-name", "-r", "--tree", "-i", "--tree-id", "-p", "--tree-parent", "-d"]},
        "jq": {"handler": "jq", "category": "read"},
        "sed": {"handler": "sed", "category": "read",
                "value_flags": ["-e", "--expression", "-f", "--file", "-l", "--line-length"],
                "opt_value_flags": ["-i", "--in-place"],
                "deny_flags": {"-f": "unknowable", "--file": "unknowable"}},
        "awk": {"handler": "awk", "category": "read",
                "value_flags": ["-F", "--field-separator", "-v", "--assign", "-e", "--source", "-f", "--file", "-i",
                                "--include", "-l", "--load", "-E", "--exec", "-o", "--pretty-print", "-p", "--profile",
                                "-d", "--dump-variables", "-W"],
                "deny_flags": {"-f": "unknowable", "--file": "unknowable", "-E": "unknowable", "--exec": "unknowable",
                               "-W": "unknowable",
                               "-i": "code_execution", "--include": "code_execution", "-l": "code_execution",
                               "--load": "code_execution", "-o": "fs_write", "--pretty-print": "fs_write",
                               "-p": "fs_write", "--profile": "fs_write", "-d": "fs_write",
                               "--dump-variables": "fs_write"}},
        "gawk": {"same_as": "awk"},
        "mawk": {"same_as": "awk"},
        "nawk": {"same_as": "awk"},
        "python3": {"category": "read", "forms": [["-m", "json.tool"]], "path_rule": ["read", "scratch"],
                    "deny_as": "code_execution", "value_flags": ["--indent"]},
        "python": {"same_as": "python3"},
        "diff": {"category": "read", "path_rule": "read", "recursive_flags": ["-r", "--recursive"],
                 "value_flags": ["-x", "--exclude", "-X", "--exclude-from", "-I", "--ignore-matching-lines", "-S",
                                 "--starting-file", "--label", "-L", "-W", "--width", "--tabsize", "-F",
                                 "--show-function-line", "-D", "--ifdef", "--to-file", "--from-file"],
                 "path_flags": {"-X": "read", "--exclude-from": "read", "--to-file": "read", "--from-file": "read"}},
        "cmp": {"category": "read", "path_rule": "read", "value_flags": ["-i", "--ignore-initial", "-n", "--bytes"]},
        "comm": {"category": "read", "path_rule": "read"},
        "join": {"category": "read", "path_rule": "read", "value_flags": ["-1", "-2", "-j", "-t", "-o", "-e", "-a", "-v"]},
        "md5sum": {"category": "read", "path_rule": "read"},
        "sha1sum": {"category": "read", "path_rule": "read"},
        "sha224sum": {"category": "read", "path_rule": "read"},
        "sha256sum": {"category": "read", "path_rule": "read"},
        "sha384sum": {"category": "read", "path_rule": "read"},
        "sha512sum": {"category": "read", "path_rule": "read"},
        "b2sum": {"category": "read", "path_rule": "read"},
        "cksum": {"category": "read", "path_rule": "read"},
        "base64": {"category": "read", "path_rule": "read", "max_operands": 1, "value_flags": ["-w", "--wrap"]},
        "base32": {"same_as": "base64"},
        "file": {"category": "read", "path_rule": "read",
                 "value_flags": ["-m", "--magic-file", "-f", "--files-from", "-F", "--separator", "-P", "--parameter",
                                 "-e", "--exclude"],
                 "path_flags": {"-m": "read", "--magic-file": "read", "-f": "read", "--files-from": "read"}},
        "ls": {"category": "list", "unknown_args": True},
        "stat": {"category": "list", "unknown_args": True},
        "tree": {"category": "list", "unknown_args": True},
        "realpath": {"category": "list", "unknown_args": True},
        "readlink": {"category": "list", "unknown_args": True},
        "find": {"handler": "find", "category": "list",
                 "value_flags": ["-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex",
                                 "-regextype", "-type", "-xtype", "-size", "-mtime", "-mmin", "-atime", "-amin",
                                 "-ctime", "-cmin", "-newer", "-anewer", "-cnewer", "-perm", "-user", "-group", "-uid",
                                 "-gid", "-links", "-inum", "-samefile", "-maxdepth", "-mindepth", "-fstype", "-lname",
                                 "-ilname", "-used", "-context", "-printf"],
                 "deny_flags": {"-execdir": "code_execution", "-okdir": "code_execution"},
                 "path_flags": {"-fprint": "scratch", "-fprint0": "scratch", "-fls": "scratch",
                                "-files0-from": "read"}},
        # --- writing inside the scratch dirs ---------------------------------------------------------------------
        "rm": {"category": "scratch_write", "path_rule": "scratch", "deny_as": "fs_destruction",
               "deny_flags": {"--no-preserve-root": "fs_destruction"}},
        "rmdir": {"category": "scratch_write", "path_rule": "scratch", "deny_as": "fs_destruction"},
        "mkdir": {"category": "scratch_write", "path_rule": "scratch", "value_flags": ["-m", "--mode", "--context"]},
        "touch": {"category": "scratch_write", "path_rule": "scratch",
                  "value_flags": ["-d", "--date", "-t", "-r", "--reference"],
                  "path_flags": {"-r": "list", "--reference": "list"}},
        "truncate": {"category": "scratch_write", "path_rule": "scratch", "deny_as": "fs_destruction",
                     "value_flags": ["-s", "--size", "-r", "--reference"], "size_flags": ["-s", "--size"],
                     "path_flags": {"-r": "list", "--reference": "list"}},
        "tee": {"category": "scratch_write", "path_rule": "scratch", "opt_value_flags": ["--output-error"]},
        "cp": {"handler": "copy", "category": "scratch_write", "source_rule": "read",
               "value_flags": ["-t", "--target-directory", "-S", "--suffix"],
               "deny_flags": {"-s": "fs_write", "--symbolic-link": "fs_write", "-l": "fs_write", "--link": "fs_write"},
               "recursive_flags": ["-r", "-R", "--recursive", "-a", "--archive"]},
        "mv": {"handler": "copy", "category": "scratch_write", "source_rule": "scratch", "deny_as": "fs_destruction",
               "value_flags": ["-t", "--target-directory", "-S", "--suffix"]},
        "chmod": {"handler": "chmod", "category": "scratch_write", "deny_as": "fs_destruction",
                  "value_flags": ["--reference"], "path_flags": {"--reference": "list"},
                  "deny_flags": {"--no-preserve-root": "fs_destruction"}},
        "chown": {"handler": "chown", "category": "scratch_write", "deny_as": "fs_destruction",
                  "value_flags": ["--reference", "--from"], "path_flags": {"--reference": "list"},
                  "deny_flags": {"--no-preserve-root": "fs_destruction"}},
        "chgrp": {"same_as": "chown"},
        "tar": {"handler": "tar", "category": "archive",
                "value_flags": ["-f", "--file", "-C", "--directory", "-b", "--blocking-factor", "-T", "--files-from",
                                "-X", "--exclude-from", "-g", "--listed-incremental", "-I", "--use-compress-program",
                                "-F", "--info-script", "--new-volume-script", "-L", "--tape-length", "-N", "--newer",
                                "--after-date", "-V", "--label", "-H", "--format", "-K", "--starting-file", "--exclude",
                                "--transform", "--xform", "--owner", "--group", "--mode", "--mtime",
                                "--strip-components", "--checkpoint-action", "--to-command", "--rsh-command",
                                "--rmt-command", "--index-file", "--record-size", "--suffix", "--newer-mtime", "--sort",
                                "--quoting-style", "--volno-file", "--warning", "--exclude-tag", "--exclude-tag-all",
                                "--exclude-tag-under", "--level", "--pax-option", "--xattrs-include",
                                "--xattrs-exclude"],
                "deny_flags": {"--to-command": "code_execution", "--checkpoint-action": "code_execution",
                               "-I": "code_execution", "--use-compress-program": "code_execution",
                               "--rsh-command": "code_execution", "--rmt-command": "code_execution",
                               "-F": "code_execution", "--info-script": "code_execution",
                               "--new-volume-script": "code_execution", "-T": "unknowable", "--files-from": "unknowable",
                               "-P": "fs_write", "--absolute-names": "fs_write", "--remove-files": "fs_destruction"},
                "path_flags": {"-X": "read", "--exclude-from": "read", "-g": "scratch", "--listed-incremental": "scratch",
                               "--index-file": "scratch", "--volno-file": "scratch"}},
        "gzip": {"category": "scratch_write", "path_rule": "scratch", "deny_as": "fs_write",
                 "read_only_flags": ["-c", "--stdout", "-l", "--list", "-t", "--test"],
                 "value_flags": ["-S", "--suffix"]},
        "gunzip": {"same_as": "gzip"}, "xz": {"same_as": "gzip"}, "unxz": {"same_as": "gzip"},
        "bzip2": {"same_as": "gzip"}, "bunzip2": {"same_as": "gzip"}, "zstd": {"same_as": "gzip"},
        "dd": {"handler": "dd", "category": "scratch_write"},
        # --- shells: only `sh -c '<literal>'`, whose string is parsed and checked like any command -------------
        "sh": {"handler": "shell", "category": "shell"},
        "bash": {"same_as": "sh"}, "dash": {"same_as": "sh"}, "ash": {"same_as": "sh"}, "zsh": {"same_as": "sh"},
        "ksh": {"same_as": "sh"}, "mksh": {"same_as": "sh"}, "yash": {"same_as": "sh"}, "posh": {"same_as": "sh"},
        # --- services and logs ----------------------------------------------------------------------------------
        "systemctl": {"handler": "systemctl", "category": "service_read",
                      "value_flags": ["-t", "--type", "--state", "-p", "--property", "-n", "--lines", "-o", "--output",
                                      "-s", "--signal", "--kill-whom", "--kill-value", "--job-mode", "--what",
                                      "--timestamp", "-H", "--host", "-M", "--machine", "--root", "--image",
                                      "--boot-loader-entry", "--reboot-argument"],
                      "deny_flags": {"-H": "network", "--host": "network", "-M": "unknowable",
                                     "--machine": "unknowable", "--root": "unknowable", "--image": "unknowable",
                                     "--user": "unknowable", "--global": "persistence", "--runtime": "system_change",
                                     "-f": "persistence", "--force": "persistence"},
                      "read_verbs": ["status", "show", "cat", "is-active", "is-enabled", "is-failed",
                                     "is-system-running", "list-units", "list-unit-files", "list-sockets",
                                     "list-timers", "list-jobs", "list-dependencies", "get-default", "help"],
                      "lifecycle_verbs": ["start", "stop", "restart", "reload", "try-restart", "reload-or-restart",
                                          "try-reload-or-restart", "condrestart", "force-reload"],
                      "deny_verbs": {"reboot": "power", "poweroff": "power", "halt": "power", "kexec": "power",
                                     "rescue": "power", "emergency": "power", "isolate": "power", "suspend": "power",
                                     "hibernate": "power", "hybrid-sleep": "power", "suspend-then-hibernate": "power",
                                     "soft-reboot": "power", "default": "power", "exit": "power",
                                     "switch-root": "power", "sleep": "power",
                                     "enable": "persistence", "reenable": "persistence", "link": "persistence",
                                     "edit": "persistence", "add-wants": "persistence", "add-requires": "persistence",
                                     "set-default": "persistence", "preset": "persistence",
                                     "preset-all": "persistence", "revert": "persistence", "unmask": "persistence",
                                     "disable": "system_change", "mask": "system_change", "kill": "system_change",
                                     "clean": "fs_destruction", "freeze": "system_change", "thaw": "system_change",
                                     "set-property": "system_change", "daemon-reload": "system_change",
                                     "daemon-reexec": "protected_process", "set-environment": "system_change",
                                     "unset-environment": "system_change", "import-environment": "system_change",
                                     "show-environment": "secrets", "bind": "docker_escape",
                                     "mount-image": "docker_escape"}},
        "service": {"handler": "service", "category": "service_read"},
        "journalctl": {"category": "logs_read",
                       "value_flags": ["-u", "--unit", "--user-unit", "-n", "--lines", "-S", "--since", "-U", "--until",
                                       "-p", "--priority", "-o", "--output", "-t", "--identifier", "-g", "--grep", "-D",
                                       "--directory", "--file", "-M", "--machine", "--root", "--image", "--namespace",
                                       "--cursor", "--after-cursor", "--cursor-file", "-F", "--field",
                                       "--output-fields", "--facility", "-T", "--exclude-identifier",
                                       "--vacuum-size", "--vacuum-time", "--vacuum-files", "--interval",
                                       "--verify-key"],
                       "deny_flags": {"--vacuum-size": "log_tampering", "--vacuum-time": "log_tampering",
                                      "--vacuum-files": "log_tampering", "--rotate": "log_tampering",
                                      "--flush": "log_tampering", "--sync": "log_tampering",
                                      "--relinquish-var": "log_tampering", "--smart-relinquish-var": "log_tampering",
                                      "--setup-keys": "log_tampering", "--update-catalog": "system_change",
                                      "-M": "unknowable", "--machine": "unknowable"},
                       "path_flags": {"-D": "read_tree", "--directory": "read_tree", "--file": "read",
                                      "--root": "read_tree", "--image": "read", "--cursor-file": "scratch"}},
        # --- firewall: read-only views -----------------------------------------------------------------------------
        "iptables": {"category": "firewall_read", "deny_as": "firewall",
                     "allow_flags": ["-L", "--list", "-S", "--list-rules", "-n", "--numeric", "-v", "--verbose", "-x",
                                     "--exact", "--line-numbers", "-t", "--table", "-w", "--wait"],
                     "value_flags": ["-t", "--table"]},
        "ip6tables": {"same_as": "iptables"},
        "nft": {"category": "firewall_read", "deny_as": "firewall", "allow_flags": ["-a", "--handle", "-n",
                                                                                    "--numeric", "-j", "--json"],
                "subcommands": {"list": {"unknown_args": True}},
                "deny_subcommands": {"flush": "firewall", "add": "firewall", "delete": "firewall", "insert": "firewall",
                                     "replace": "firewall", "create": "firewall", "destroy": "firewall",
                                     "reset": "firewall", "-f": "firewall"}},
        "ufw": {"category": "firewall_read", "subcommands": {"status": {}},
                "deny_subcommands": {"disable": "firewall", "reset": "firewall", "allow": "firewall",
                                     "deny": "firewall", "reject": "firewall", "limit": "firewall",
                                     "delete": "firewall", "insert": "firewall", "default": "firewall",
                                     "enable": "firewall", "route": "firewall", "reload": "firewall",
                                     "logging": "log_tampering"}},
        # --- Docker ---------------------------------------------------------------------------------------------------
        "docker": {
            "category": "docker", "deny_as": "docker_escape",
            "value_flags": ["-l", "--log-level", "-H", "--host", "-c", "--context", "--config", "--tlscacert",
                            "--tlscert", "--tlskey"],
            "allow_flags": ["-D", "--debug", "-l", "--log-level", "-h", "--help", "-v", "--version"],
            "subcommands": {
                "ps": {"category": "docker_read", "unknown_args": True},
                "logs": {"category": "docker_read", "unknown_args": True},
                "inspect": {"category": "docker_read", "unknown_args": True},
                "stats": {"category": "docker_read", "unknown_args": True},
                "top": {"category": "docker_read", "unknown_args": True},
                "port": {"category": "docker_read", "unknown_args": True},
                "diff": {"category": "docker_read", "unknown_args": True},
                "events": {"category": "docker_read", "unknown_args": True},
                "version": {"category": "docker_read", "unknown_args": True},
                "info": {"category": "docker_read", "unknown_args": True},
                "images": {"category": "docker_read", "unknown_args": True},
                "history": {"category": "docker_read", "unknown_args": True},
                "restart": {"category": "docker_lifecycle", "unknown_args": True},
                "stop": {"category": "docker_lifecycle", "unknown_args": True},
                "start": {"category": "docker_lifecycle", "unknown_args": True},
                "kill": {"category": "docker_lifecycle", "unknown_args": True},
                "rm": {"category": "docker_lifecycle", "unknown_args": True},
                "pause": {"category": "docker_lifecycle", "unknown_args": True},
                "unpause": {"category": "docker_lifecycle", "unknown_args": True},
                "wait": {"category": "docker_lifecycle", "unknown_args": True},
                "rmi": {"category": "docker_image", "unknown_args": True},
                "pull": {"category": "docker_image", "unknown_args": True},
                "run": {"handler": "docker_run", "category": "docker_run",
                        "value_flags": ["-a", "--attach", "--add-host", "--annotation", "--blkio-weight",
                                        "--blkio-weight-device", "--cap-add", "--cap-drop", "--cgroup-parent",
                                        "--cgroupns", "--cidfile", "--cpu-period", "--cpu-quota", "--cpu-rt-period",
                                        "--cpu-rt-runtime", "-c", "--cpu-shares", "--cpus", "--cpuset-cpus",
                                        "--cpuset-mems", "--detach-keys", "--device", "--device-cgroup-rule",
                                        "--device-read-bps", "--device-read-iops", "--device-write-bps",
                                        "--device-write-iops", "--dns", "--dns-option", "--dns-search", "--domainname",
                                        "--entrypoint", "-e", "--env", "--env-file", "--expose", "--gpus",
                                        "--group-add", "--health-cmd", "--health-interval", "--health-retries",
                                        "--health-start-period", "--health-start-interval", "--health-timeout", "-h",
                                        "--hostname", "--ip", "--ip6", "--ipc", "--isolation", "--kernel-memory", "-l",
                                        "--label", "--label-file", "--link", "--link-local-ip", "--log-driver",
                                        "--log-opt", "--mac-address", "-m", "--memory", "--memory-reservation",
                                        "--memory-swap", "--memory-swappiness", "--mount", "--name", "--network",
                                        "--net", "--network-alias", "--net-alias", "--oom-score-adj", "--pid",
                                        "--pids-limit", "--platform", "-p", "--publish", "--pull", "--restart",
                                        "--runtime", "--security-opt", "--shm-size", "--stop-signal", "--stop-timeout",
                                        "--storage-opt", "--sysctl", "--tmpfs", "-u", "--user", "--userns", "--ulimit",
                                        "--uts", "-v", "--volume", "--volume-driver", "--volumes-from", "-w",
                                        "--workdir"],
                        "deny_flags": {"--privileged": "docker_escape", "--cap-add": "docker_escape",
                                       "--device": "docker_escape", "--device-cgroup-rule": "docker_escape",
                                       "--volumes-from": "docker_escape", "--volume-driver": "docker_escape",
                                       "--runtime": "docker_escape", "--cgroup-parent": "docker_escape"},
                        "path_flags": {"--env-file": "read", "--label-file": "read", "--cidfile": "scratch"},
                        "host_namespace_flags": ["--pid", "--ipc", "--uts", "--userns", "--network", "--net",
                                                 "--cgroupns"],
                        "security_opt_allow": ["no-new-privileges", "no-new-privileges:true",
                                               "no-new-privileges=true"],
                        "bind_source_rule": "scratch"},
                "create": {"same_as": "docker run"},
                "exec": {"handler": "docker_exec", "category": "docker_exec",
                         "value_flags": ["-e", "--env", "--env-file", "-u", "--user", "-w", "--workdir",
                                         "--detach-keys"],
                         "deny_flags": {"--privileged": "docker_escape"},
                         "path_flags": {"--env-file": "read"}, "root_users": ["0", "root"]},
                "cp": {"handler": "docker_cp", "category": "docker_copy",
                       "allow_flags": ["-a", "--archive", "-L", "--follow-link", "-q", "--quiet"]},
                "container": {"category": "docker", "subcommands": {
                    "ls": {"same_as": "docker ps"}, "list": {"same_as": "docker ps"}, "ps": {"same_as": "docker ps"},
                    "inspect": {"same_as": "docker inspect"}, "logs": {"same_as": "docker logs"},
                    "stats": {"same_as": "docker stats"}, "top": {"same_as": "docker top"},
                    "port": {"same_as": "docker port"}, "diff": {"same_as": "docker diff"},
                    "restart": {"same_as": "docker restart"}, "stop": {"same_as": "docker stop"},
                    "start": {"same_as": "docker start"}, "kill": {"same_as": "docker kill"},
                    "rm": {"same_as": "docker rm"}, "pause": {"same_as": "docker pause"},
                    "unpause": {"same_as": "docker unpause"}, "wait": {"same_as": "docker wait"},
                    "prune": {"category": "docker_prune"}, "run": {"same_as": "docker run"},
                    "create": {"same_as": "docker run"}, "exec": {"same_as": "docker exec"},
                    "cp": {"same_as": "docker cp"}}},
                "image": {"category": "docker", "subcommands": {
                    "ls": {"same_as": "docker images"}, "list": {"same_as": "docker images"},
                    "inspect": {"same_as": "docker inspect"}, "history": {"same_as": "docker history"},
                    "prune": {"category": "docker_prune"}, "rm": {"same_as": "docker rmi"},
                    "pull": {"same_as": "docker pull"}}},
                "network": {"category": "docker", "subcommands": {
                    "prune": {"category": "docker_prune"},
                    "ls": {"category": "docker_read", "unknown_args": True},
                    "list": {"category": "docker_read", "unknown_args": True},
                    "inspect": {"category": "docker_read", "unknown_args": True}}},
                "volume": {"category": "docker", "subcommands": {
                    "ls": {"category": "docker_read", "unknown_args": True},
                    "list": {"category": "docker_read", "unknown_args": True},
                    "inspect": {"category": "docker_read", "unknown_args": True}}},
                "system": {"category": "docker", "subcommands": {
                    "df": {"category": "docker_read", "unknown_args": True}, "info": {"same_as": "docker info"},
                    "events": {"same_as": "docker events"},
                    "prune": {"category": "docker_prune", "deny_flags": {"--volumes": "fs_destruction"}}}},
                "builder": {"category": "docker", "subcommands": {
                    "prune": {"category": "docker_prune"}, "du": {"category": "docker_read"},
                    "ls": {"category": "docker_read"}}},
                "compose": {"category": "docker_compose",
                            "value_flags": ["-f", "--file", "-p", "--project-name", "--project-directory",
                                            "--env-file", "--profile", "--ansi", "--progress", "--parallel"],
                            "path_flags": {"-f": "read", "--file": "read", "--env-file": "read",
                                           "--project-directory": "list"},
                            "subcommands": {
                                "ps": {"category": "docker_read", "unknown_args": True},
                                "logs": {"category": "docker_read", "unknown_args": True},
                                "ls": {"category": "docker_read", "unknown_args": True},
                                "top": {"category": "docker_read", "unknown_args": True},
                                "images": {"category": "docker_read", "unknown_args": True},
                                "version": {"category": "docker_read", "unknown_args": True},
                                "restart": {"category": "docker_lifecycle", "unknown_args": True},
                                "stop": {"category": "docker_lifecycle", "unknown_args": True},
                                "start": {"category": "docker_lifecycle", "unknown_args": True},
                                "pull": {"category": "docker_image", "unknown_args": True}}},
            },
        },
        "docker-compose": {"same_as": "docker compose"},
    },
}


# ---------------------------------------------------------------------------------------------------------
# Public types
# ---------------------------------------------------------------------------------------------------------
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
    is one simple command and commands[0]["argv"] is exactly the argv to execute without a shell.
    """

    allowed: bool
    rule: str
    reason: str
    commands: list
    needs_shell: bool

    def as_dict(self) -> dict:
        return {"allowed": self.allowed, "rule": self.rule, "reason": self.reason,
                "commands": self.commands, "needs_shell": self.needs_shell}


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


# ---------------------------------------------------------------------------------------------------------
# Policy documents: validation and loading
# ---------------------------------------------------------------------------------------------------------
_PATH_RULES = ("none", "list", "read", "read_tree", "scratch", "scratch_dir")
_HANDLERS_NAMES = ("shell", "docker_run", "docker_exec", "docker_cp", "systemctl", "service", "kill", "ip", "awk",
                   "sed", "find", "tar", "curl", "wget", "dd", "copy", "chmod", "chown", "jq", "cd", "shell_vars")
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
    "source_rule": _RULE,
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


def _lookup_spec(executables, path):
    """The spec named by a same_as path like "docker ps", or None."""
    words = path.split()
    spec = executables.get(words[0]) if words else None
    for word in words[1:]:
        spec = (spec or {}).get("subcommands", {}).get(word)
    return spec


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
        elif char == "[" and pattern.find("]", i + 2) > 0:
            end = pattern.find("]", i + 2)
            tokens.append(("[", pattern[i + 1:end]))
            i = end
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
            return fnmatch.fnmatchcase(one[1], "[" + other[1] + "]")
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


def _expand_glob(pattern, budget=5000):
    """The paths a shell glob matches now, reading at most `budget` directory entries (None beyond that)."""
    found = ["/"]
    for part in pattern.strip("/").split("/"):
        if not any(c in part for c in "*?["):
            found = [posixpath.join(base, part) for base in found]
            continue
        matched = []
        for base in found:
            try:
                with os.scandir(base) as entries:
                    for entry in entries:
                        budget -= 1
                        if budget < 0:
                            return None
                        # like sh: a wildcard never matches a leading dot
                        if fnmatch.fnmatchcase(entry.name, part) and (part[0] == "." or entry.name[0] != "."):
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
            if not out and (char != "[" or re.match(r"\[[!^]|\[[^]]*-", raw[i:])):
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

    __slots__ = ("value", "raw", "dynamic", "glob", "tilde", "tree")

    def __init__(self, value, raw=None, dynamic=False, glob=False, tilde=False, *, tree=None):
        self.value, self.raw = value, value if raw is None else raw
        self.dynamic, self.glob, self.tilde = dynamic, glob, tilde
        self.tree = tree  # find's {}: the start paths; the word is one of them or anything below

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


# ---------------------------------------------------------------------------------------------------------
# The evaluation of one command string or argv
# ---------------------------------------------------------------------------------------------------------
_MAX_LENGTH = 16384  # characters of one command string or argv
_MAX_DEPTH = 6  # sh -c nesting
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*\Z")  # a plain command name


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

    sys.settrace(count)
    try:
        return bashlex.parse(text)
    finally:
        sys.settrace(previous)


class _Evaluation:
    def __init__(self, policy, context):
        data = policy.data
        self.p, self.ctx = data, context
        self.entries, self.denials = [], []
        self.src, self.depth, self.last_cd = "", 0, None
        self.cwds = [_normpath(posixpath.join("/", context.cwd or "/"))]
        self.scratch = sorted({_normpath(d) for d in list(data["scratch_dirs"]) + list(context.scratch_dirs)
                               if d.startswith("/") and _normpath(d) != "/"})
        self.agent_home = _normpath(context.agent_home) if context.agent_home else None
        self.context_secrets = [_normpath(p) for p in context.secret_paths]
        self.secrets = list(data["secret_paths"]) + self.context_secrets
        self.protected = list(data["protected_paths"].items())
        if self.agent_home:
            self.protected.append(("persistence", [self.agent_home]))
        self.units = list(data["protected_units"].items())
        self.units += [(u[:-8] if u.endswith(".service") else u, "protected_process") for u in context.protected_units]
        self.denied_exact, self.denied_globs = policy.denied_exact, policy.denied_globs

    # --- entry points -----------------------------------------------------------------------------------
    def command(self, text):
        if not HAS_BASHLEX:
            return self._verdict_denied("deny.unparseable", "bashlex is not installed: commands cannot be parsed")
        if not isinstance(text, str) or not text.strip():
            return self._verdict_denied("deny.unparseable", "empty command")
        if len(text) > _MAX_LENGTH or "\x00" in text:
            return self._verdict_denied("deny.unparseable", "command too long or contains NUL bytes")
        trees = self._run_string(text)
        return self._verdict(trees is None or self._needs_shell(trees, text))

    def argv(self, argv):
        if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, str) for a in argv):
            return self._verdict_denied("deny.unparseable", "argv must be a non-empty list of strings")
        if any("\x00" in a for a in argv) or sum(len(a) for a in argv) > _MAX_LENGTH:
            return self._verdict_denied("deny.unparseable", "argv too long or contains NUL bytes")
        entry = self._new_entry(list(argv))
        self._record(entry, lambda: self._judge(entry, [_Word(a) for a in argv], _Call()))
        return self._verdict(False)

    # --- verdicts -------------------------------------------------------------------------------------------
    def _verdict_denied(self, rule, reason):
        return Verdict(False, rule, reason, [], True)

    def _verdict(self, needs_shell):
        specific = [d for d in self.denials if d[0].startswith("deny.")]
        if specific or self.denials:
            rule, reason = (specific or self.denials)[0]
            return Verdict(False, rule, reason, self.entries, needs_shell)
        if not self.entries:
            return Verdict(False, "deny.unparseable", "no command found", self.entries, needs_shell)
        if len(self.entries) == 1:
            return Verdict(True, self.entries[0]["rule"], self.entries[0]["reason"], self.entries, needs_shell)
        names = ", ".join(e["executable"] for e in self.entries if e["executable"])
        return Verdict(True, "allow.all", f"all {len(self.entries)} commands are allowed: {names}",
                       self.entries, needs_shell)

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
        elif kind in ("for", "while", "until"):
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
        value, flags = _scan_word(masked)
        if "subst" in flags or "unbalanced" in flags:
            raise _denial("unknowable", f"shell expansion the policy cannot follow: {raw}")
        params = [p for p in parts if p.kind == "parameter"]
        for param in params:
            self._check_parameter(param)
        dynamic = bool(params or masked != raw or flags & {"dollar", "brace", "lead_glob"})
        word = _Word(raw if dynamic else value, raw, dynamic, "glob" in flags, any(p.kind == "tilde" for p in parts))
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
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.p["readable_variables"]):
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
            delimiter = self.src[target.pos[0]:target.pos[1]]
            body = node.heredoc.value if getattr(node, "heredoc", None) else ""
            if not any(q in delimiter for q in "'\"\\") and ("$" in body or "`" in body):
                raise _denial("unknowable", "here-document with expansions (quote the delimiter)")
            return
        word = self._word(target)
        if kind == "<<<":
            return  # a here-string is data on stdin
        if "<" in kind:
            self._check_path(word, "read", "redirect")
        if ">" in kind or kind == "<>":
            self._check_path(word, "scratch", "redirect", "fs_write")

    # --- paths --------------------------------------------------------------------------------------------------
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
            homes = ["/root", "/home/*"] if not user else ["/root"] if user == "root" else ["/home/" + user]
            values = [home + "/" + rest for home in homes]
        paths = []
        for value in values:
            bases = [""] if value.startswith("/") else self.cwds
            paths += [_normpath(posixpath.join(base, value) if base else value) for base in bases]
        if self.ctx.resolve_paths:
            paths += [r for p in paths if _ANY not in p for r in self._resolved(p) if r not in paths]
        return paths

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
            rest, unknown_tail = self._unwrap(name, wrapper, words[1:])
            if rest is None:
                entry["executable"] = ""
                return "wrapper"
            words, call = rest, call.with_tail(unknown_tail)
        spec = self.p["executables"].get(name)
        if spec is None:
            raise _denial(None, f"not in policy: {name}")
        return self._check_spec(spec, name, words[1:], call)

    def _unwrap(self, name, wrapper, args):
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
            if not spec.get("unknown_args"):
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

    def _nested_string(self, word, label):
        """Judge a command string another command will run (sh -c, flock -c) as if typed here."""
        if word.dynamic:
            raise _denial("unknowable", f"{label}: command string cannot be known statically: {word.raw}")
        before = len(self.denials)
        self._run_string(word.value)
        if len(self.denials) > before:
            rule, reason = self.denials[before]
            raise _Deny(rule, f"{label}: {reason}")

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

    # --- handlers: commands whose argument grammar needs code ------------------------------------------------------
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
        protected = self._protected_pids()
        for pid in pids:
            if not re.fullmatch(r"[0-9]+", pid):
                raise _denial("protected_process", f"{label} {pid}: only single positive pids may be signalled")
            if int(pid) <= 1 or int(pid) in protected:
                raise _denial("protected_process", f"{label} {pid}: protected process (PID 1, the agent or dockerd)")
        return spec.get("category", "process_signal")

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
            option = values[i]
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
            for member in parsed.operands:
                bases = [""] if member.value.startswith("/") or not dirs else [d.value for d in dirs] + [""]
                for base in bases:
                    self._check_path(member.part(posixpath.join(base, member.value)) if base else member,
                                     "read_tree", label)
        return spec.get("category", "archive")

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
        for word in operands:
            self._check_path(word, "scratch", label, spec.get("deny_as", "fs_destruction"))
        return spec.get("category", "scratch_write")

    def _h_chown(self, spec, label, args, call):
        parsed = _parse_options(args, spec)
        self._check_flags(spec, label, parsed)
        operands = list(parsed.operands)
        if "--reference" not in parsed.names():
            if not operands:
                raise _denial(None, f"{label}: no owner given")
            operands.pop(0)
        for word in operands:
            self._check_path(word, "scratch", label, spec.get("deny_as", "fs_destruction"))
        return spec.get("category", "scratch_write")

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


# ---------------------------------------------------------------------------------------------------------
# Small grammars: tar's old-style options, curl's file arguments, awk programs, sed scripts
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
              (r"@\s*(load|include|namespace)\b", "code_execution", "extensions are not allowed"),
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


# ---------------------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------------------
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
