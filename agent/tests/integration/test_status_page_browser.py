"""The status page in a real headless browser (Debian's chromium and chromedriver, driven
by Debian's python3-selenium) against a live cluster: what it shows, that it follows the
cluster without a reload, and that it fits a phone. Screenshots go to the test's tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.harness.agents import RadioCluster
from tests.harness.clients import SourceClient, listen
from tests.harness.media import AudioSample
from tests.harness.pki import ZoneCertificate
from tests.harness.waiting import wait_for
from tests.integration.conftest import ZONE
from tests.integration.test_front_door_listeners import live_source

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


def start_chromium(
    tmp_path: Path, arguments: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> webdriver.Chrome:
    """Headless Chromium with a fresh profile (`env`: the driver's, and so the browser's)."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
        *arguments,
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service("/usr/bin/chromedriver", log_path=str(tmp_path / "chromedriver.log"), env=env)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(15)
    driver.set_script_timeout(5)
    return driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium; quit (browser and driver) at teardown. If it does not start, the
    test fails."""
    driver = start_chromium(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def https_browser(
    tmp_path: Path, https_cluster: RadioCluster, certificate: ZoneCertificate
) -> Iterator[webdriver.Chrome]:
    """Headless Chromium that trusts the test CA (in the NSS database of its own HOME, as
    Chromium on Linux reads it) and finds nodeN.stream.test at 127.0.0.N."""
    home = tmp_path / "home"
    database = home / ".pki" / "nssdb"
    database.mkdir(parents=True)
    for command in (
        ["certutil", "-N", "-d", f"sql:{database}", "--empty-password"],
        [
            *("certutil", "-A", "-d", f"sql:{database}", "-n", "radio test CA"),
            *("-t", "C,,", "-i", str(certificate.ca)),
        ],
    ):
        subprocess.run(command, check=True, capture_output=True, timeout=30)
    rules = ",".join(
        f"MAP node{index}.{ZONE} {node.listen_address}"
        for index, node in enumerate(https_cluster.nodes, start=1)
    )
    driver = start_chromium(
        tmp_path, (f"--host-resolver-rules={rules}",), {**os.environ, "HOME": str(home)}
    )
    try:
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


PLAYER_STATE = """
const player = document.getElementById("player");
const button = document.querySelector('#mounts tr[data-mount="live.mp3"] button.play');
return {
  currentTime: player.currentTime,
  paused: player.paused,
  error: player.error ? player.error.code : null,
  src: player.currentSrc,
  button: button ? button.getAttribute("aria-label") : null,
  charts: document.querySelectorAll("#mounts svg.chart polyline").length,
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
};
"""


def play_in_the_page(browser: webdriver.Chrome, page_url: str, tmp_path: Path) -> None:
    """Open the status page on a phone's width, press live.mp3's play button, and check
    the page's player plays, goes on across the page's refreshes, and stops."""
    browser.set_window_size(360, 800)
    browser.get(page_url)
    browser.execute_script("window.__loaded_marker = 1;")
    browser.find_element(By.CSS_SELECTOR, '#mounts button[data-play="live.mp3"]').click()

    def played(seconds: float) -> dict[str, Any] | None:
        state = browser.execute_script(PLAYER_STATE)
        return state if state["currentTime"] > seconds else None

    state = wait_for(
        lambda: played(1.0),
        timeout=20,
        what="the page's player to play live.mp3",
        explain=lambda: f"{browser.execute_script(PLAYER_STATE)} {console_errors(browser)}",
    )
    assert state["src"] == f"{page_url}live.mp3"
    assert state["error"] is None
    assert state["button"] == "Stop live.mp3"
    assert state["charts"] == 1
    # The page refreshes its tables every 5 s; the player outside them plays on.
    state = wait_for(
        lambda: played(state["currentTime"] + 6.0),
        timeout=20,
        what="the player to go on across the page's refreshes",
    )
    assert not state["paused"]
    assert state["button"] == "Stop live.mp3"
    assert state["scrollWidth"] <= state["innerWidth"]
    assert browser.execute_script("return window.__loaded_marker") == 1
    screenshot(browser, tmp_path / "status-phone-playing.png")
    browser.find_element(By.CSS_SELECTOR, '#mounts button[data-play="live.mp3"]').click()
    stopped = browser.execute_script(PLAYER_STATE)
    assert stopped["paused"]
    assert stopped["button"] == "Play live.mp3"
    assert console_errors(browser) == []


def test_the_play_button_plays_the_mount_in_the_page_and_keeps_playing_across_refreshes(
    radio_cluster: RadioCluster,
    browser: webdriver.Chrome,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    tmp_path: Path,
) -> None:
    live_source(radio_cluster, source_client_factory, mp3_audio)
    # The player asks once: the front door must already direct listeners of the mount
    # (the nodes' reports name it a loop after their Icecasts serve it).
    radio_cluster.nodes[0].wait_front_door_serving("/live.mp3")
    play_in_the_page(browser, f"{radio_cluster.nodes[0].front_door_url}/", tmp_path)


def test_the_player_plays_over_https_with_the_clusters_certificate(
    https_cluster: RadioCluster,
    https_browser: webdriver.Chrome,
    source_client_factory: Callable[..., SourceClient],
    mp3_audio: AudioSample,
    tmp_path: Path,
) -> None:
    """The page over HTTPS (as a radio's website would embed it): its player's stream
    comes over HTTPS too, with the certificate checked against the trusted test CA."""
    live_source(https_cluster, source_client_factory, mp3_audio)
    https_cluster.nodes[1].wait_front_door_serving("/live.mp3")
    play_in_the_page(https_browser, f"{https_cluster.nodes[1].https_url}/", tmp_path)
