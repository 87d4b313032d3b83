# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic of dtma_redeploy: the fixed SSH rollback command and the view of a /health answer."""

from __future__ import annotations

import shlex

from ansible_collections.agentopia.dtma.plugins.modules import dtma_redeploy


def test_rollback_command_for_the_defaults():
    assert dtma_redeploy.rollback_command("/opt/dtma", "dtma") == (
        'ln -sfn "$(readlink /opt/dtma/previous)" /opt/dtma/current.tmp && '
        "mv -Tf /opt/dtma/current.tmp /opt/dtma/current && systemctl restart dtma")


def test_rollback_command_quotes_every_path_and_the_service():
    command = dtma_redeploy.rollback_command("/srv/my dtma;rm -rf /", "dtma$(id)")
    assert "'/srv/my dtma;rm -rf /'/previous" not in command  # the whole path is one quoted word
    assert "'/srv/my dtma;rm -rf /previous'" in command
    assert "'/srv/my dtma;rm -rf /current.tmp'" in command
    assert "'/srv/my dtma;rm -rf /current'" in command
    assert command.endswith("systemctl restart 'dtma$(id)'")
    # split as a shell would: the only command substitution is the fixed readlink
    words = shlex.split(command)
    assert words[:3] == ["ln", "-sfn", "$(readlink '/srv/my dtma;rm -rf /previous')"]
    assert words.count("&&") == 2


def test_health_view_keeps_the_identifying_fields():
    body = {"status": "ok", "docker": True, "version": "0.1.0", "uptime_s": 3.2, "boot_id": "b1", "timestamp": "t"}
    assert dtma_redeploy.health_view(body) == {"boot_id": "b1", "version": "0.1.0", "status": "ok"}
    assert dtma_redeploy.health_view({}) == {}
    assert dtma_redeploy.health_view(None) == {}
