# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ssh_settings(): ssh_command_timeout wins over the module's default for it, which applies only when it is not set."""

from __future__ import annotations

from ansible_collections.agentopia.dtma.plugins.module_utils._ssh import ssh_settings

PARAMS = {"ssh_host": "203.0.113.10", "ssh_port": 22, "ssh_user": "root", "ssh_key_file": None,
          "ssh_host_key_checking": True, "ssh_known_hosts_file": None, "ssh_connect_timeout": 10,
          "ssh_command_timeout": None}


def test_the_modules_default_applies_when_ssh_command_timeout_is_not_set():
    assert ssh_settings(PARAMS)["command_timeout"] == 60
    assert ssh_settings(PARAMS, command_timeout=40)["command_timeout"] == 40


def test_ssh_command_timeout_wins_when_given():
    assert ssh_settings(dict(PARAMS, ssh_command_timeout=2), command_timeout=40)["command_timeout"] == 2
