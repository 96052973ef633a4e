"""The JupyterLab user's book, in a real browser: JupyterLab on localhost, chapter 03 at the smoke profile in
headless Chromium (Debian's ``chromium`` and ``chromedriver``, driven by Selenium; nothing downloads a browser),
its threshold explorer run live, its slider moved, and the numbers it shows checked to change."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "notebooks/03_gat_detection_classification.ipynb"


def _browser():
    """Paths of Chromium and its driver, or the reason the test cannot run here."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        return None, ("no Chromium here: install Debian's chromium and chromium-driver (.ci/run does where it can) "
                      "to run the JupyterLab browser test")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, "selenium is not installed (pip install -r requirements.txt)"
    return (chromium, driver), ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving the repository on localhost with a token, the app exposed to the page's scripts; the
    notebooks run at the smoke profile, live (not headless), with the test's own artefact cache."""
    port, token = _free_port(), "advdetect-test-token"
    served = tmp_path / "served"                           # a copy: JupyterLab saves what it runs
    (served / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / CHAPTER, served / CHAPTER)
    env = {**os.environ, "ADVDETECT_PROFILE": "smoke", "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    for unattended in ("ADVDETECT_HEADLESS", "TQDM_DISABLE"):   # either would make the widgets static
        env.pop(unattended, None)
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={served}",
                             "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True",
                             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=served)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within a minute")
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait(driver, what, timeout, describe):
    end = time.time() + timeout
    while time.time() < end:
        value = what(driver)
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {describe}")


def test_threshold_explorer_reacts_to_its_slider_in_jupyterlab(lab):
    paths, why = _browser()
    if paths is None:
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    chromium, chromedriver = paths
    os.environ.setdefault("SE_OFFLINE", "true")              # Selenium Manager must not fetch a driver
    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromedriver), options=opts)
    url, token = lab
    try:
        driver.get(f"{url}/lab/tree/{CHAPTER}?token={token}")
        _wait(driver, lambda d: d.execute_script(
            "const app = window.jupyterapp; const w = app && app.shell.currentWidget;"
            "return !!(w && w.sessionContext && w.sessionContext.session && w.content && w.content.widgets.length)"),
            120, "the chapter to open with a kernel")
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        handle = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".widget-slider .noUi-handle"), 900,
                       "the threshold explorer's slider (chapter 03 running at the smoke profile)")[0]
        readout = driver.find_element(By.CSS_SELECTOR, ".widget-slider .widget-readout")
        figure = ".widget-interact .jp-OutputArea-output img"
        first_img = _wait(driver, lambda d: [e.get_attribute("src") for e in d.find_elements(By.CSS_SELECTOR, figure)],
                          300, "the explorer's first figure")[0]
        first_value = readout.text
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
        handle.click()
        for _ in range(25):
            handle.send_keys(Keys.ARROW_RIGHT)
        _wait(driver, lambda d: readout.text != first_value, 60, "the slider's readout to move")
        _wait(driver, lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, figure)
                                 if e.get_attribute("src") != first_img], 120, "the explorer to redraw")
        assert float(readout.text) > float(first_value)
    finally:
        driver.quit()
