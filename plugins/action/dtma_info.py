# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""dtma_info runs in the controller's worker: a health check is one HTTP call, cheaper than a module round trip."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.agentopia.dtma.plugins.modules.dtma_info import InfoManager, module_args
from ansible_collections.agentopia.dtma.plugins.plugin_utils._inprocess import run_manager


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        result.update(run_manager(self, InfoManager, module_args()))
        return result
