# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""bench/bench_report.py's timer: each task's wall time (from its start to the next task's start, or to the end of
the play), written as JSON to $BENCH_TASK_TIMES when the playbook ends. Enabled only by the benchmark."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r'''
name: bench_task_times
type: aggregate
short_description: Each task's wall time, for bench/bench_report.py
description: Writes [{name, seconds}] to the file named by the BENCH_TASK_TIMES environment variable.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.times = []
        self.current = None

    def _close(self):
        if self.current:
            name, started = self.current
            self.times.append({"name": name, "seconds": round(time.monotonic() - started, 3)})
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.current = (task.get_name(), time.monotonic())

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("BENCH_TASK_TIMES")
        if path:
            with open(path, "w") as out:
                json.dump(self.times, out, indent=1)
