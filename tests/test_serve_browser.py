"""The live page in a real headless Chromium: draw with a mouse, a pen and a finger; the results follow each stroke.

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them) and selenium (requirements-dev.txt);
skips, saying which is missing, where they are not installed. SGVU_SCREENSHOT=path.png also saves a screenshot
of the page (docs/images/serve.png was made so, on the main job's workdir: see README).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import bundle_workdirs
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-dev.txt)")
if not (CHROMIUM and CHROMEDRIVER):
  pytest.skip("no headless browser: install Debian's chromium and chromium-driver "
              "(apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium.webdriver.common.actions import interaction  # noqa: E402
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.common.actions.pointer_input import PointerInput  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def page(tmp_path_factory):
  workdir = os.environ.get("SGVU_SERVE_WORKDIR") or bundle_workdirs.make_otf_workdir(tmp_path_factory.mktemp("otf"))
  proc, url = bundle_workdirs.start_server(["--workdir", workdir])
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  profile = tempfile.mkdtemp(prefix="sgvu-chromium-")
  # As root in a container, without a display or a network beyond loopback.
  for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--window-size=1200,900", f"--user-data-dir={profile}"):
    options.add_argument(flag)
  driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
  try:
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    yield driver
  finally:
    driver.quit()
    proc.terminate()
    proc.wait(timeout=30)
    shutil.rmtree(profile, ignore_errors=True)


def _stroke(driver, points, kind=interaction.POINTER_MOUSE):
  """Draws one stroke through `points` (fractions of the canvas) with a mouse, pen or touch pointer."""
  canvas = driver.find_element(By.ID, "canvas")
  rect = canvas.rect
  actions = ActionBuilder(driver, mouse=PointerInput(kind, kind))
  pointer = actions.pointer_action
  x0, y0 = points[0]
  pointer.move_to(canvas, int((x0 - 0.5) * rect["width"]), int((y0 - 0.5) * rect["height"]))
  pointer.pointer_down()
  for x, y in points[1:]:
    pointer.move_to(canvas, int((x - 0.5) * rect["width"]), int((y - 0.5) * rect["height"]))
  pointer.pointer_up()
  actions.perform()


def _results_after(driver, strokes):
  """Waits until the list shows the answer for `strokes` strokes; returns the result keys."""
  WebDriverWait(driver, 60).until(
      lambda d: d.find_element(By.ID, "results").get_attribute("data-strokes") == str(strokes))
  assert "failed" not in driver.find_element(By.ID, "status").text
  return [li.get_attribute("data-key") for li in driver.find_elements(By.CSS_SELECTOR, "#results li")]


STROKES = [  # a rough shoe: sole, heel, upper, toe, lace
    [(0.15, 0.7), (0.5, 0.72), (0.85, 0.7)],
    [(0.15, 0.7), (0.15, 0.45), (0.3, 0.4)],
    [(0.3, 0.4), (0.5, 0.5), (0.85, 0.6), (0.85, 0.7)],
    [(0.4, 0.45), (0.45, 0.5)],
]


def test_results_update_after_every_stroke(page):
  assert page.find_element(By.ID, "results").get_attribute("data-strokes") == "0"
  seen = []
  kinds = [interaction.POINTER_MOUSE, interaction.POINTER_PEN, interaction.POINTER_TOUCH, interaction.POINTER_MOUSE]
  for n, (points, kind) in enumerate(zip(STROKES, kinds), start=1):
    _stroke(page, points, kind)
    keys = _results_after(page, n)
    assert len(keys) == min(10, int(page.execute_script("return state.info.gallery_size"))), keys
    assert page.find_element(By.ID, "status").text.startswith(f"after {n} stroke")
    seen.append(keys)
  assert page.execute_script("return state.strokes.length") == len(STROKES)
  # Every stroke arrived in QuickDraw format, with more than its end points where it moved.
  lengths = page.execute_script("return state.strokes.map(s => s[0].length)")
  assert all(n >= 2 for n in lengths), lengths


def test_target_rank_strip_undo_and_clear(page):
  first = page.find_element(By.CSS_SELECTOR, "#results li:nth-child(3)")
  key = first.get_attribute("data-key")
  first.click()
  WebDriverWait(page, 60).until(lambda d: not d.find_element(By.ID, "target").get_attribute("hidden"))
  ranks = page.find_element(By.ID, "target-ranks").text
  assert ranks.count("#") == len(STROKES), ranks  # one rank per stroke count
  assert page.find_elements(By.CSS_SELECTOR, "#target-chart circle")
  if path := os.environ.get("SGVU_SCREENSHOT"):
    page.save_screenshot(path)
  page.find_element(By.ID, "undo").click()
  assert len(_results_after(page, len(STROKES) - 1)) > 0
  assert page.execute_script("return state.target") == key
  page.find_element(By.ID, "clear").click()
  assert _results_after(page, 0) == []
  assert page.find_element(By.ID, "undo").get_attribute("disabled")
