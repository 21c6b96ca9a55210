"""The status page in a real headless browser (Debian's chromium and chromedriver, driven
by Debian's python3-selenium) against a live cluster: what it shows, that it follows the
cluster without a reload, and that it fits a phone. Screenshots go to the test's tmp_path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.harness.agents import RadioCluster
from tests.harness.clients import listen
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

PASSWORD = "dj-secret"
# No hyphen to break at: only the page's overflow-wrap keeps it from widening the table.
LONG_NAME = "community_radio_evening_programme_with_a_rather_long_name.mp3"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# What the page shows, read in one script run: the page's own refresh cannot replace
# rows half-way through the reading.
PAGE_STATE = """
const rows = (selector) => [...document.querySelectorAll(selector)];
return {
  leader: document.getElementById("leader-name").textContent,
  mounts: Object.fromEntries(rows("#mounts tr[data-mount]").map((row) => [
    row.dataset.mount,
    {onair: row.querySelector(".onair").textContent,
     onairClass: row.querySelector(".onair").className,
     title: row.querySelector(".title").textContent,
     titleElements: row.querySelector(".title").children.length},
  ])),
  nodes: Object.fromEntries(rows("#nodes tr[data-node]").map((row) => [
    row.dataset.node,
    {name: row.querySelector(".name").textContent,
     role: row.querySelector(".role").textContent},
  ])),
  marker: window.__loaded_marker,
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
  mountsRight: document.getElementById("mounts").getBoundingClientRect().right,
};
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a fresh profile; quit (browser and driver) at teardown.
    If it does not start, the test fails."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service("/usr/bin/chromedriver", log_path=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(15)
        driver.set_script_timeout(5)
        yield driver
    finally:
        driver.quit()


def page_state(browser: webdriver.Chrome) -> dict[str, Any]:
    return browser.execute_script(PAGE_STATE)


def console_errors(browser: webdriver.Chrome) -> list[str]:
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
    ]


def screenshot(browser: webdriver.Chrome, path: Path) -> None:
    assert browser.save_screenshot(str(path)), path
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    assert path.stat().st_size > 1000, path


def test_the_status_page_shows_the_cluster_follows_it_in_place_and_fits_a_phone(
    radio_cluster: RadioCluster, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    leader = radio_cluster.wait_leader()
    node = radio_cluster.nodes[0]

    def served_status() -> dict[str, Any]:
        return json.loads(listen(f"{node.front_door_url}/api/v1/status", 1 << 20).body)

    wait_for(  # the agent has read the mount: the first paint shows it
        lambda: "live.mp3" in served_status()["mounts"],
        timeout=10,
        what=f"live.mp3 in {node.name}'s status",
        explain=radio_cluster.log_tails,
    )
    browser.get(f"{node.front_door_url}/")
    assert browser.title == "Radio cluster status"
    assert f"Leader: {leader} (epoch" in browser.find_element(By.ID, "leader").text
    shown = page_state(browser)
    assert shown["leader"] == leader
    assert {name: row["role"] for name, row in shown["nodes"].items()} == {
        other.name: "leader" if other.name == leader else "replica" for other in radio_cluster.nodes
    }
    assert shown["mounts"] == {
        "live.mp3": {
            "onair": "dead air",
            "onairClass": "onair bad",
            "title": "",
            "titleElements": 0,
        }
    }
    screenshot(browser, tmp_path / "status-desktop.png")

    # The cluster changes; the page follows from /api/v1/status, without a reload (which
    # would drop the marker).
    browser.execute_script("window.__loaded_marker = 1;")
    drained = next(
        other.name for other in radio_cluster.nodes if other.name not in (leader, node.name)
    )
    radio_cluster.store().create_mount({"name": LONG_NAME, "source_password": PASSWORD})
    radio_cluster.drain(drained)
    # A title with markup, long enough to wrap on a phone: shown as text.
    title = "<b>Bold</b> & the " + "very " * 12 + "long title"
    radio_cluster.store().set_title("live.mp3", title, time.time())

    def followed() -> bool:
        state = page_state(browser)
        return (
            LONG_NAME in state["mounts"]
            and state["nodes"][drained]["name"] == f"{drained} (draining)"
            and state["mounts"]["live.mp3"]["title"] == title
        )

    wait_for(
        followed,
        timeout=15,
        what="the page to show the new mount and the draining node",
        explain=lambda: f"page: {page_state(browser)}\nconsole: {console_errors(browser)}",
    )
    shown = page_state(browser)
    assert shown["marker"] == 1, "the page reloaded"
    assert shown["mounts"][LONG_NAME] == {
        "onair": "dead air",
        "onairClass": "onair bad",
        "title": "",
        "titleElements": 0,
    }
    assert shown["mounts"]["live.mp3"]["titleElements"] == 0  # no <b>: the markup is text
    assert shown["leader"] == leader
    assert shown["nodes"][drained]["role"] == "replica"
    screenshot(browser, tmp_path / "status-desktop-updated.png")

    # Phone widths: no sideways scrolling, and the mounts table fits whole (names wrap).
    for width in (390, 360):
        browser.set_window_size(width, 844)
        shown = page_state(browser)
        assert shown["innerWidth"] <= width, shown
        assert shown["scrollWidth"] <= shown["innerWidth"], shown
        assert shown["mountsRight"] <= shown["innerWidth"], shown
        assert browser.find_element(By.ID, "mounts").is_displayed()
        assert browser.find_element(By.CSS_SELECTOR, "#mounts .onair").is_displayed()
        screenshot(browser, tmp_path / f"status-phone-{width}.png")
    assert page_state(browser)["marker"] == 1
    assert console_errors(browser) == []
