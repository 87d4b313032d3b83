# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""dtma_info run through main(): a URL the client refuses is the health section's verdict, not a failure
(no HTTP is made: the URL is refused before anything is sent)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.agentopia.dtma.tests.unit.plugins.module_args import patch_module_args

from ansible_collections.agentopia.dtma.plugins.modules import dtma_info

TOKEN = "unit-test-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("DTMA_URL", "DTMA_BEARER_TOKEN", "DTMA_TIMEOUT", "DTMA_VALIDATE_CERTS", "DTMA_CA_PATH",
                 "AGENTOPIA_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def run_main(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            dtma_info.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def test_health_reports_a_url_without_scheme_as_an_unhealthy_agent(capsys):
    code, result = run_main(capsys, {"url": "127.0.0.1:30000", "token": TOKEN, "gather": ["health"]})
    assert code == 0 and not result.get("failed") and result["changed"] is False
    health = result["health"]
    assert health["overall"] == "unhealthy"
    api = health["checks"]["agent_api"]
    assert api["status"] == "unhealthy"
    assert "url option (or DTMA_URL) must start with http:// or https://, for example http://127.0.0.1:30000" in api["reason"]
    assert health["checks"]["docker"]["status"] == "unknown"
    assert health["agent"] == {}


def test_a_url_from_the_environment_is_reported_the_same_way(capsys, monkeypatch):
    monkeypatch.setenv("DTMA_URL", "agent.example:30000")
    monkeypatch.setenv("DTMA_BEARER_TOKEN", TOKEN)
    code, result = run_main(capsys, {"gather": ["health"]})
    assert code == 0 and "'agent.example:30000'" in result["health"]["checks"]["agent_api"]["reason"]


def test_any_other_section_fails_with_the_reason_and_keeps_the_health_gathered_before(capsys):
    code, result = run_main(capsys, {"url": "127.0.0.1:30000", "token": TOKEN, "gather": ["health", "status"]})
    assert code == 1 and result["failed"] is True
    assert result["msg"].startswith("could not gather the status section from the DTMA agent: the url option")
    assert result["health"]["overall"] == "unhealthy"
