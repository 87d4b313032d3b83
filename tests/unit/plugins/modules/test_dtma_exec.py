# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The SSH fallback of dtma_exec runs what the policy checked: the verdict's run_argv, not the string as typed."""

from __future__ import annotations

import shlex

import pytest

from ansible_collections.agentopia.dtma.plugins.module_utils._policy import HAS_BASHLEX, PolicyContext, default_policy
from ansible_collections.agentopia.dtma.plugins.modules import dtma_exec


def test_ssh_command_execs_the_argv_in_the_checked_cwd():
    line = dtma_exec.ssh_command(["/bin/bash", "--norc", "--noprofile", "-c", "docker ps | grep 'a b'"])
    assert line == "cd / || exit 125\nexec /bin/bash --norc --noprofile -c 'docker ps | grep '\"'\"'a b'\"'\"''"
    assert shlex.split(line.split("\n", 1)[1])[1:] == ["/bin/bash", "--norc", "--noprofile", "-c", "docker ps | grep 'a b'"]


@pytest.mark.skipif(not HAS_BASHLEX, reason="needs bashlex")
def test_the_script_sent_is_regenerated_from_the_checked_tree():
    # the quoted here-document delimiter that bashlex once read differently from the shell
    verdict = default_policy().check_command("cat <<'true'\ntrue\nid\n'true'", PolicyContext(cwd=dtma_exec.SSH_CWD))
    assert [c["executable"] for c in verdict.commands] == ["cat", "id", "true"]
    script = verdict.run_argv[-1]
    assert script == "cat <<'DTMA_EOF_1'\nDTMA_EOF_1\nid\ntrue"
    assert dtma_exec.ssh_command(verdict.run_argv).endswith(shlex.quote(script))
