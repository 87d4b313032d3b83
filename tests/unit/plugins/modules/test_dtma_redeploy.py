# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic of dtma_redeploy: the fixed SSH rollback command and the view of a /health answer."""

from __future__ import annotations

import os
import shlex
import subprocess

from ansible_collections.agentopia.dtma.plugins.modules import dtma_redeploy


def test_rollback_command_for_the_defaults():
    assert dtma_redeploy.rollback_command("/opt/dtma", "dtma") == (
        'old="$(readlink /opt/dtma/current)" && new="$(readlink /opt/dtma/previous)" && '
        'ln -sfn "$new" /opt/dtma/current.tmp && ln -sfn "$old" /opt/dtma/previous.tmp && '
        "mv -Tf /opt/dtma/current.tmp /opt/dtma/current && mv -Tf /opt/dtma/previous.tmp /opt/dtma/previous && "
        "{ systemctl reset-failed dtma || true; } && systemctl restart dtma")


def test_rollback_command_quotes_every_path_and_the_service():
    command = dtma_redeploy.rollback_command("/srv/my dtma;rm -rf /", "dtma$(id)")
    assert "'/srv/my dtma;rm -rf /'/previous" not in command  # the whole path is one quoted word
    for name in ("current", "previous", "current.tmp", "previous.tmp"):
        assert "'/srv/my dtma;rm -rf /%s'" % name in command
    assert command.endswith("systemctl restart 'dtma$(id)'")
    # split as a shell would: the only command substitutions are the two fixed readlinks
    words = shlex.split(command)
    assert words[0] == "old=$(readlink '/srv/my dtma;rm -rf /current')"
    assert words[2] == "new=$(readlink '/srv/my dtma;rm -rf /previous')"
    assert command.replace("'dtma$(id)'", "").count("$(") == 2 and words.count("&&") == 7


def test_rollback_command_swaps_the_links(tmp_path):
    """Run it for real (systemctl replaced by a recorder): current and previous trade places."""
    home = tmp_path / "dtma home"
    (home / "releases" / "1.0.0").mkdir(parents=True)
    (home / "releases" / "2.0.0-broken").mkdir()
    os.symlink("releases/2.0.0-broken", str(home / "current"))
    os.symlink("releases/1.0.0", str(home / "previous"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text('#!/bin/sh\necho "$@" > "%s"\n' % (tmp_path / "calls"))
    (bindir / "systemctl").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]))
    subprocess.run(["/bin/sh", "-c", dtma_redeploy.rollback_command(str(home), "dtma")], env=env, check=True)
    assert os.readlink(str(home / "current")) == "releases/1.0.0"
    assert os.readlink(str(home / "previous")) == "releases/2.0.0-broken"
    assert (tmp_path / "calls").read_text() == "restart dtma\n"


def test_health_view_keeps_the_identifying_fields():
    body = {"status": "ok", "docker": True, "version": "0.1.0", "uptime_s": 3.2, "boot_id": "b1", "timestamp": "t"}
    assert dtma_redeploy.health_view(body) == {"boot_id": "b1", "version": "0.1.0", "status": "ok"}
    assert dtma_redeploy.health_view({}) == {}
    assert dtma_redeploy.health_view(None) == {}
