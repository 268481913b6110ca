"""The annotation page in a real headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium): a person rates with the keyboard, picks a best, writes a correction,
and the database holds exactly that.

Skips only when the browser is not installed; CI (``.ci/run``) installs it and sets
``INSTRUCTFLOW_REQUIRE_BROWSER=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from sqlalchemy import select

from ops.feedback.items import queue, ratings
from ops.feedback.server import FeedbackServer
from ops.feedback.store import Annotator, BestPick, Correction

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.slow


def browser_missing() -> str:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    return ", ".join(missing)


@pytest.fixture
def browser(tmp_path):
    missing = browser_missing()
    if missing:
        if os.environ.get("INSTRUCTFLOW_REQUIRE_BROWSER"):
            pytest.fail(f"INSTRUCTFLOW_REQUIRE_BROWSER is set but {missing} is missing")
        pytest.skip(f"no headless browser: {missing} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def server(store):
    running = FeedbackServer(store, "127.0.0.1", 0)
    thread = threading.Thread(target=running.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def test_rate_pick_and_correct_with_the_keyboard(browser, server, store):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 10)
    order = [entry["id"] for entry in queue(store, None)]

    def on_item(identity: str) -> None:
        wait.until(lambda d: identity in d.find_element(By.ID, "item-meta").text)

    def keys(*pressed: str) -> None:
        ActionChains(browser).send_keys(*pressed).perform()

    browser.get(server.url)
    name = browser.find_element(By.ID, "annotator")
    name.send_keys("ana", Keys.ENTER)
    on_item(order[0])
    keys("4", "j", "2", "k", "b", "c")  # score both, back to the first: best, then correct it
    box = browser.find_element(By.ID, "correction")
    wait.until(lambda d: box.get_attribute("value"))  # the box starts from the focused reply
    box.clear()
    box.send_keys("A corrected reply.")
    box.send_keys(Keys.ESCAPE)
    keys("n")
    on_item(order[1])
    keys("5", "j", "3", Keys.ENTER)
    on_item(order[2])

    assert sorted((r["item_id"], r["position"], r["score"]) for r in ratings(store)) == sorted(
        [(order[0], 0, 4), (order[0], 1, 2), (order[1], 0, 5), (order[1], 1, 3)]
    )
    with store.read() as session:
        assert session.scalars(select(Annotator.name)).all() == ["ana"]
        assert [(p.item_id, p.position) for p in session.scalars(select(BestPick))] == [
            (order[0], 0)
        ]
        corrections = [(c.item_id, c.text, c.position) for c in session.scalars(select(Correction))]
    assert corrections == [(order[0], "A corrected reply.", 0)]

    browser.refresh()  # the name is remembered, and the next item is the first one not done
    on_item(order[2])
    assert browser.find_element(By.ID, "annotator").get_attribute("value") == "ana"
    assert "2 done" in browser.find_element(By.ID, "progress").text
