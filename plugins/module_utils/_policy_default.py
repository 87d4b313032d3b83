# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# The shipped default policy, as data (its format: POLICY_SCHEMA in _policy.py). The table of allowed
# executables is in _policy_default_executables.py.

# sibling files: through the collection's path in Ansible (AnsiballZ ships what these name); in the agent's
# dtma_agent.policy package, which links the same files in under the same names, relatively
if __name__.startswith("ansible_collections."):
    from ansible_collections.agentopia.dtma.plugins.module_utils._policy_default_executables import DEFAULT_EXECUTABLES
else:
    from ._policy_default_executables import DEFAULT_EXECUTABLES


# ---------------------------------------------------------------------------------------------------------
# The shipped default policy, as data (see POLICY_SCHEMA in _policy.py).
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
    "executables": DEFAULT_EXECUTABLES,
}
