# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection. It is not a public API and may change without notice.
"""The SSH fallback: a real paramiko connection that runs only commands the safety policy approved."""

from __future__ import annotations

import os
import time
import traceback

try:
    import paramiko
    HAS_PARAMIKO = True
    PARAMIKO_IMPORT_ERROR = None
except ImportError:
    HAS_PARAMIKO = False
    PARAMIKO_IMPORT_ERROR = traceback.format_exc()


class SshError(Exception):
    """The SSH connection or the command could not be run; the message says which and why."""


def ssh_settings(params, command_timeout=60):
    """The SSH options of a module as keyword arguments of run_over_ssh(); `command_timeout` is the module's default
    for ssh_command_timeout, which wins when given."""
    if params["ssh_command_timeout"] is not None:
        command_timeout = params["ssh_command_timeout"]
    return dict(host=params["ssh_host"], port=params["ssh_port"], user=params["ssh_user"],
                key_file=params["ssh_key_file"], host_key_checking=params["ssh_host_key_checking"],
                known_hosts_file=params["ssh_known_hosts_file"], connect_timeout=params["ssh_connect_timeout"],
                command_timeout=command_timeout)


def run_over_ssh(command, host, port=22, user="root", key_file=None, host_key_checking=True,
                 known_hosts_file=None, connect_timeout=10, command_timeout=60, stdin_data=None):
    """Run one command line over SSH, with `stdin_data` on its standard input; return dict(rc, stdout, stderr,
    duration_ms, connect_ms). It does not judge the command: callers send fixed programs (systemctl, dtma-agent)."""
    if not HAS_PARAMIKO:
        raise SshError("the SSH fallback needs the paramiko Python library on the controller")
    if not host:
        raise SshError("the SSH fallback needs ssh_host")
    client = paramiko.SSHClient()
    if host_key_checking:
        client.load_system_host_keys()
        if known_hosts_file:
            client.load_host_keys(os.path.expanduser(known_hosts_file))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # documented opt-out
    started = time.monotonic()
    try:
        try:
            client.connect(host, port=port, username=user, key_filename=key_file, timeout=connect_timeout,
                           banner_timeout=connect_timeout, auth_timeout=connect_timeout,
                           allow_agent=key_file is None, look_for_keys=key_file is None)
        except paramiko.SSHException as exc:
            raise SshError("SSH to %s@%s:%s failed: %s" % (user, host, port, exc))
        except OSError as exc:
            raise SshError("SSH to %s@%s:%s failed: %s" % (user, host, port, exc.strerror or exc))
        connected = time.monotonic()
        try:
            stdin, stdout, stderr = client.exec_command(command, timeout=command_timeout)
            if stdin_data is not None:
                stdin.write(stdin_data)
            stdin.channel.shutdown_write()
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            rc = stdout.channel.recv_exit_status()
        except (paramiko.SSHException, OSError) as exc:
            raise SshError("the command over SSH failed or timed out after %ss: %s" % (command_timeout, exc))
        done = time.monotonic()
        return dict(rc=rc, stdout=out, stderr=err, duration_ms=round((done - connected) * 1000, 1),
                    connect_ms=round((connected - started) * 1000, 1))
    finally:
        client.close()
