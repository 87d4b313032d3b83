"""playbooks/health_report.yml end to end: a small real fleet (real agents on loopback, each droplet with a Docker
engine of its own, real containers, a crash-looping MCP server, an agent that is down, a host that cannot be reached over SSH, a wrong token), the
real playbook run with ansible-playbook, and the HTML file it writes loaded in real headless Chromium (Debian's
chromium and chromium-driver, driven by selenium): the DOM is asserted on, the filter and the sort are used like a
person would, and a screenshot is kept under tests/output/health-report/ (CI's artifact)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dtma_testing import BUSYBOX, PREFIX, Agent, PrivateDocker, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
OUTPUT = REPO / "tests" / "output" / "health-report"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# a blocked command that would be markup if the report did not escape it
XSS = "cat /etc/shadow '<img src=x onerror=document.title=1>'"


def run_report(collections_path, inventory: Path, home: Path, report: Path, *extra: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DTMA_", "ANSIBLE_", "AGENTOPIA_"))}
    env.update({"ANSIBLE_COLLECTIONS_PATH": str(collections_path), "ANSIBLE_NOCOLOR": "1", "HOME": str(home),
                "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_HOST_KEY_CHECKING": "False"})
    done = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(REPO / "playbooks" / "health_report.yml"),
                           "-e", f"dtma_report_path={report}", *extra],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def fleet(docker_api, tmp_path_factory, collections_path):
    """Six inventory hosts: two healthy agents on one engine (one with blocked commands in its audit trail), one with
    a crash-looping MCP server on another, a wrong token, an agent that is down and a host unreachable over SSH;
    the playbook run once against them."""
    tmp = tmp_path_factory.mktemp("health-report")
    engines = [PrivateDocker(), PrivateDocker()]
    agents = []
    try:
        steady_engine, looping_engine = (e.start(docker_api) for e in engines)
        for engine in (steady_engine, steady_engine, looping_engine):
            agents.append(Agent(tmp, env={"DOCKER_HOST": engine.docker_host}).start())
        good, audited, looping = agents
        steady = {"instanceNameOnToolbox": PREFIX + "report-steady", "dockerImageUrl": BUSYBOX,
                  "accountToolInstanceId": "ati-steady", "mcpTransportType": "stdio",
                  "baseConfigOverrideJson": {"Cmd": ["sleep", "3600"]}}
        r = good.post("/mcp/groups", json={"groupId": PREFIX + "report-ok", "servers": [steady]})
        assert r.status_code == 201, r.text
        crash = {"instanceNameOnToolbox": PREFIX + "report-crash", "dockerImageUrl": BUSYBOX,
                 "accountToolInstanceId": "ati-crash",
                 "baseConfigOverrideJson": {"Cmd": ["sh", "-c", "sleep 2; exit 3"],
                                            "HostConfig": {"RestartPolicy": {"Name": "always"}}}}
        r = looping.post("/mcp/groups", json={"groupId": PREFIX + "report-loop", "servers": [crash],
                                              "options": {"settleSeconds": 1}})
        assert r.status_code == 201, r.text
        for command in ("frobnicate --now", XSS):
            assert audited.post("/ssh/execute", json={"command": command}).status_code == 403
        assert wait_until(lambda: looping.get("/mcp/status", params={"probe": "true"}).json()["mcp_servers"][0]
                          ["health"].get("restart_count", 0) >= 1, timeout=20, interval=0.5)

        local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        hosts = {
            "good-1": {**local, "dtma_url": good.url, "dtma_token": good.token},
            "good-2": {**local, "dtma_url": audited.url, "dtma_token": audited.token},
            "loop-1": {**local, "dtma_url": looping.url, "dtma_token": looping.token},
            "badtoken-1": {**local, "dtma_url": good.url, "dtma_token": "wrong-" + "z" * 40},
            "dead-1": {**local, "dtma_url": f"http://127.0.0.1:{free_port()}", "dtma_token": "x" * 40},
            # no token anywhere: the playbook reads it from the host, which cannot be reached
            "lost-1": {"ansible_host": "127.0.0.1", "ansible_port": free_port(), "ansible_connection": "ssh",
                       "ansible_user": "root", "ansible_python_interpreter": sys.executable},
        }
        inventory = tmp / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"dtma_hosts": {"hosts": hosts}}))
        inventory.chmod(0o600)
        report = tmp / "report" / "fleet.html"
        report.parent.mkdir()
        rc, output = run_report(collections_path, inventory, tmp, report)
        yield {"rc": rc, "output": output, "report": report, "html": report.read_text() if report.exists() else "",
               "hosts": hosts, "tokens": [a.token for a in agents] + ["wrong-" + "z" * 40], "inventory": inventory,
               "tmp": tmp, "collections_path": collections_path}
    finally:
        for a in agents:
            a.stop()
        for engine in engines:
            engine.stop()


@pytest.fixture(scope="module")
def browser(fleet, tmp_path_factory):
    from selenium import webdriver  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("Debian's chromium and chromium-driver are needed (scripts/setup.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # root needs --no-sandbox; the rest keeps a closed network quiet and the profile fresh
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.get(fleet["report"].as_uri())
    yield driver
    driver.quit()


def rows(driver, visible_only=True):
    found = driver.find_elements("css selector", "#hosts tbody tr")
    return [r for r in found if r.is_displayed()] if visible_only else found


def row_of(driver, host):
    [row] = [r for r in rows(driver, False) if r.find_element("css selector", "td:nth-child(2)").text == host]
    return row


def test_the_playbook_succeeds_and_writes_one_self_contained_file(fleet):
    assert fleet["rc"] == 0, fleet["output"][-4000:]
    assert "6 hosts: 2 healthy, 2 degraded, 2 down" in fleet["output"], fleet["output"][-3000:]
    html = fleet["html"]
    assert html.startswith("<!DOCTYPE html>")
    assert "default-src 'none'" in html  # the page may fetch nothing, and the browser enforces it
    # no external resource of any kind: no src/href/url()/@import/srcset pointing anywhere over the network
    assert not re.search(r"""(src|href|action|srcset|poster|data)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(https?:)?//|@import""", html, re.I)
    assert "<link" not in html and "<script src" not in html and "<iframe" not in html
    for token in fleet["tokens"]:
        assert token not in html and token not in fleet["output"]


def test_the_summary_counts_every_host(browser):
    counts = {s: browser.find_element("css selector", f"#count-{s} .value").text for s in ("down", "degraded", "healthy")}
    assert counts == {"down": "2", "degraded": "2", "healthy": "2"}
    assert len(rows(browser)) == 6
    assert browser.title == "DTMA fleet health: 2 down, 2 degraded, 2 healthy"
    # the page fetched nothing: no resource entry besides the document itself
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_down_and_degraded_hosts_are_flagged_with_their_reason(browser):
    expected = {
        "dead-1": ("down", "did not answer"),
        "lost-1": ("down", "unreachable"),
        "loop-1": ("degraded", "restart"),
        "badtoken-1": ("degraded", "401"),
        "good-1": ("healthy", ""),
        "good-2": ("healthy", ""),
    }
    for host, (status, reason) in expected.items():
        row = row_of(browser, host)
        assert row.get_attribute("data-status") == status, host
        assert row.find_element("css selector", ".pill").text == status
        assert reason.lower() in row.find_element("css selector", "td.reason").text.lower(), (host, row.text)
    # worst first: the two down hosts lead the table
    assert [r.get_attribute("data-status") for r in rows(browser)] == ["down"] * 2 + ["degraded"] * 2 + ["healthy"] * 2
    lost = row_of(browser, "lost-1").find_element("css selector", "td.reason").text
    assert "ssh" in lost.lower() or "connect" in lost.lower(), lost


def test_host_details_show_servers_restarts_probes_and_blocked_commands(browser):
    details = {d.find_element("css selector", "summary b").text: d
               for d in browser.find_elements("css selector", "details.host")}
    assert list(details)[:2] == ["dead-1", "lost-1"]
    loop = details["loop-1"]
    assert loop.get_attribute("open") is not None  # problems are open to read, healthy hosts folded
    assert details["good-1"].get_attribute("open") is None
    first = loop.find_element("css selector", "li.problem")
    assert "warning" in first.get_attribute("class") and "restart" in first.text.lower()
    restarts = loop.find_element("css selector", "tr.server td:nth-child(5)").text
    assert int(restarts) >= 1
    browser.execute_script("arguments[0].open = true", details["good-1"])
    server = details["good-1"].find_element("css selector", "tr.server")
    assert "healthy" in server.text and "stdio" in server.text and "not probed" in server.text
    api = details["good-1"].find_element("css selector", "table tr td .bar i")  # the agent API check's time, as a bar
    assert re.fullmatch(r"width:\s*[0-9.]+%;?", api.get_attribute("style")), api.get_attribute("style")
    browser.execute_script("arguments[0].open = true", details["good-2"])
    blocked = [r.text for r in details["good-2"].find_elements("css selector", "tr.blocked")]
    assert len(blocked) == 2 and "<img src=x" in blocked[0] and "frobnicate --now" in blocked[1]
    # the command is text, not markup
    assert not browser.find_elements("css selector", "details.host img") and browser.title.startswith("DTMA")


def test_the_filter_narrows_the_rows(browser):
    box = browser.find_element("id", "filter")
    box.clear()
    box.send_keys("dead")
    assert [r.find_element("css selector", "td:nth-child(2)").text for r in rows(browser)] == ["dead-1"]
    assert browser.find_element("id", "shown").text == "1"
    assert not browser.find_element("id", "host-2").is_displayed()  # the details follow the filter
    box.clear()
    box.send_keys("x")  # clear() fires no input event; typing does
    box.send_keys("\b")
    assert len(rows(browser)) == 6
    browser.find_element("id", "count-down").click()
    assert sorted(r.find_element("css selector", "td:nth-child(2)").text for r in rows(browser)) == ["dead-1", "lost-1"]
    browser.find_element("css selector", ".seg [data-status-filter=degraded]").click()
    assert sorted(r.find_element("css selector", "td:nth-child(2)").text for r in rows(browser)) == ["badtoken-1", "loop-1"]
    box.send_keys("loop")
    assert [r.find_element("css selector", "td:nth-child(2)").text for r in rows(browser)] == ["loop-1"]
    box.clear()
    box.send_keys("x\b")
    browser.find_element("css selector", ".seg [data-status-filter=all]").click()
    assert len(rows(browser)) == 6


def test_clicking_a_header_sorts(browser):
    header = browser.find_element("css selector", "#hosts th[data-key='1']")
    header.click()
    names = [r.find_element("css selector", "td:nth-child(2)").text for r in rows(browser)]
    assert names == sorted(names) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert [r.find_element("css selector", "td:nth-child(2)").text for r in rows(browser)] == sorted(names, reverse=True)
    status = browser.find_element("css selector", "#hosts th[data-key='0']")
    status.click()
    assert [r.get_attribute("data-status") for r in rows(browser)][:2] == ["down", "down"]


def test_screenshot_is_kept_as_the_ci_artifact(browser, fleet):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(fleet["report"], OUTPUT / "fleet.html")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(max(height, 800), 4000))
    assert browser.save_screenshot(str(OUTPUT / "fleet.png"))
    assert (OUTPUT / "fleet.png").stat().st_size > 20000


def test_fail_on_down_fails_the_play_after_writing_the_report(fleet):
    report = fleet["tmp"] / "report" / "again.html"
    rc, output = run_report(fleet["collections_path"], fleet["inventory"], fleet["tmp"], report,
                            "-e", "dtma_report_fail_on_down=true", "--limit", "dead-1")
    assert rc != 0 and "down: dead-1" in output, output[-3000:]
    assert report.exists() and "dead-1" in report.read_text()
