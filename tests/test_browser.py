"""End to end in a real browser: ``streamlit run app.py`` on a free localhost port, driven by Playwright + chromium.

Uses Debian's chromium at /usr/bin/chromium (Playwright's own browser download does not work offline;
scripts/test.sh installs the package). Screenshots land in test-artifacts/ (gitignored).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
RUN_TIMEOUT_MS = 240_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no chromium at {CHROMIUM}: install Debian's chromium (scripts/test.sh does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """The app on a free port, until the module's tests are done."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = _free_port()
    log = open(ARTIFACTS / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, f"streamlit exited ({proc.returncode}); see {ARTIFACTS / 'streamlit.log'}"
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            assert time.time() < deadline, "streamlit did not answer its health check within 120 s"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need the playwright package")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


def wait_idle(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Until the script run is over: Streamlit shows its status widget while a script runs."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_timeout(300)


def screenshot(page, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main container, so the viewport grows to the content."""
    height = page.evaluate("() => Math.max(document.querySelector('[data-testid=\"stMain\"]').scrollHeight,"
                           " document.body.scrollHeight)")
    page.set_viewport_size({"width": 1280, "height": int(height) + 40})
    page.wait_for_timeout(800)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1280, "height": 800})
    return path


def choose(page, label: str, option: str) -> None:
    """Pick an option of a Streamlit select box by typing into it."""
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True))
    box.locator("input").click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).first.click()
    wait_idle(page)


def no_exception(page) -> None:
    assert page.get_by_test_id("stException").count() == 0


def test_a_first_visit_straight_to_a_page_url_gets_the_whole_app(server, page):
    """The first request a fresh server gets is a page's own URL (a bookmark, a reload after a restart): the page
    must still come up inside the app (its navigation, the model picker), not as a bare script. Kept first in this
    module, so the server has served nothing before it. Nothing is fetched from elsewhere (the favicon is the
    app's own: a material-icon favicon is fetched from fonts.gstatic.com on every load, an error offline)."""
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((server, "data:")) else outside.append(r.url))
    page.goto(f"{server}/compare", wait_until="domcontentloaded")
    expect(page.get_by_test_id("stSidebar").get_by_text("Model", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_role("link", name="Evaluate")).to_be_visible()
    wait_idle(page)
    no_exception(page)
    assert page.evaluate("() => document.querySelector('link[rel*=icon]').href").startswith(server)
    assert not outside, outside


def test_explore_ead_on_a_digit(server, page):
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Explore").wait_for(timeout=120_000)
    wait_idle(page)
    choose(page, "Model", "Carlini–Wagner MNIST CNN")
    page.get_by_role("button", name="Browse").click()  # the gallery dialog: one thumbnail per class
    page.get_by_role("dialog").get_by_role("button", name="digit 3").click()
    wait_idle(page)
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_text("True class 3")).to_be_visible(timeout=60_000)
    ead = page.get_by_role("radio", name="EAD-FISTA")
    ead.click()
    wait_idle(page)
    expect(ead).to_have_attribute("aria-checked", "true")
    page.get_by_role("button", name="Run attack").click()

    success = page.get_by_test_id("stAlert").filter(has_text=re.compile(r"Success — 3 → "))
    success.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    l1 = page.get_by_test_id("stMetric").filter(has_text="ℓ1").get_by_test_id("stMetricValue")
    expect(l1).to_have_text(re.compile(r"^\d+(\.\d+)?$"), timeout=60_000)
    assert float(l1.inner_text()) > 0
    expect(page.get_by_text(re.compile(r"^EAD-FISTA on digit 3 \(#3\)"))).to_be_visible()
    no_exception(page)
    assert screenshot(page, "browser_explore.png").stat().st_size > 10_000


def test_a_typed_out_of_range_number_is_refused_in_one_sentence(server, page):
    """Issue 11 item 7: typing 0 binary-search steps used to be refused by the browser with only a tooltip, and
    Run went on silently with the old value."""
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Explore").wait_for(timeout=120_000)
    wait_idle(page)
    box = page.get_by_role("spinbutton", name="binary-search steps")
    box.fill("0")
    box.press("Tab")
    wait_idle(page)
    page.get_by_role("button", name="Run attack").click()
    error = page.get_by_test_id("stAlert").filter(has_text="binary_search_steps must be an integer from 1 to 20; got 0.")
    error.wait_for(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_test_id("stProgress")).to_have_count(0)  # nothing ran
    no_exception(page)


def test_teach_toy_plot_keeps_its_contours_through_play(server, page):
    """Issue 11 item 5: the toy plot's contour lines disappeared on ▶ Play or the iteration slider (plotly.js drops
    contour traces when frames animate the others; the level sets are now line traces, 16 of them)."""
    page.goto(f"{server}/teach", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Teach").wait_for(timeout=120_000)
    wait_idle(page)
    plot = page.get_by_test_id("stPlotlyChart").filter(has=page.get_by_text("▶ Play"))
    plot.scroll_into_view_if_needed()
    lines = plot.locator("g.trace.scatter")  # 16 level sets, the boundary, x₀, x* and the three paths
    expect(lines.first).to_be_attached(timeout=60_000)
    before = lines.count()
    plot.get_by_text("▶ Play").click()
    page.wait_for_timeout(9_000)  # 60 frames of 120 ms
    assert before >= 20 and lines.count() == before, (before, lines.count())
    assert plot.locator("g.slider-container").count() == 1
    no_exception(page)


def test_stop_keeps_the_best_result_so_far(server, page):
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Explore").wait_for(timeout=120_000)
    wait_idle(page)
    for name, value in (("binary-search steps", "1"), ("iterations per step", "5000")):
        box = page.get_by_role("spinbutton", name=name)
        box.fill(value)
        box.press("Tab")
    page.get_by_role("button", name="Run attack").click()
    progress = page.get_by_test_id("stProgress")
    progress.wait_for(timeout=60_000)
    page.wait_for_function("() => /iteration ([3-9]\\d|\\d{3,}|\\d,\\d{3}) of (at most )?5,000/.test("
                           "document.querySelector('[data-testid=\"stProgress\"]')?.innerText || '')",
                           timeout=RUN_TIMEOUT_MS)
    page.get_by_test_id("stButton").get_by_role("button", name="Stop").click()
    caption = page.get_by_text(re.compile(r"(\d+) iterations in .* stopped early, best so far"))
    caption.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    iterations = int(re.search(r"(\d+) iterations", caption.inner_text()).group(1))
    assert 0 < iterations < 5000
    expect(page.get_by_test_id("stMetric").filter(has_text="ℓ1")).to_have_count(1, timeout=60_000)
    no_exception(page)
    screenshot(page, "browser_stop.png")


def test_compare_runs_all_four_attacks(server, page):
    page.goto(f"{server}/compare", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Compare").wait_for(timeout=120_000)
    wait_idle(page)
    choose(page, "Image", "digit 3 (#3)")
    expect(page.get_by_text("True class 3")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Run all four").click()

    page.get_by_role("heading", name="Metrics").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    for title in ("C&W L2", "EAD-FISTA · EN rule", "EAD-FISTA · L1 rule", "StrAttack"):
        expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r"^ℓ1 \d+\.\d+ · ℓ2"))).to_have_count(4, timeout=60_000)
    assert page.get_by_text(re.compile(r"Success → ")).count() >= 3
    expect(page.get_by_text("Interpretability score vs ν")).to_be_visible(timeout=60_000)
    no_exception(page)
    assert screenshot(page, "browser_compare.png").stat().st_size > 10_000


def test_evaluate_two_digits_with_the_quick_budget(server, page, tmp_path):
    """The page's defaults (EAD and PGD, the quick budget, mnist:0-1, every target): about 20 s on one CPU thread."""
    import csv

    folder = tmp_path / "browser evaluation"
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Explore").wait_for(timeout=120_000)
    wait_idle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Evaluate").click()
    page.get_by_role("heading", name="Evaluate").wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_role("textbox", name="Results folder").fill(str(folder))
    page.get_by_role("button", name="Start evaluation").click()
    expect(page.get_by_test_id("stProgress")).to_have_count(1, timeout=60_000)  # polled while the run goes on
    page.get_by_text(re.compile(r"^Finished: 36 new rows")).wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    expect(page.get_by_role("heading", name="Best, average and worst case")).to_be_visible()
    with page.expect_download() as download:  # the table's numbers, as the page offers them
        page.get_by_role("button", name="Table as CSV").click()
    with open(download.value.path(), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["attack"], r["case"]) for r in rows] == [(a, c) for a in ("ead", "pgd") for c in ("best", "average", "worst")]
    assert all(r["n"] == "2" and 0 <= float(r["asr"]) <= 100 for r in rows)
    assert '"steps": 100' in rows[0]["params"]  # EAD ran the quick budget (3 × 100), as the page says
    expect(page.get_by_text("Started on this server: 2 images × 2 attack settings · targets all · quick budget · mnist-cnn")) \
        .to_be_visible()
    no_exception(page)
    assert screenshot(page, "browser_evaluate.png").stat().st_size > 10_000

    page.get_by_role("button", name="Open in Explore").click()
    page.get_by_text(re.compile(r"Opened from the evaluation in .* \(row #\d+\)")).wait_for(timeout=60_000)
    wait_idle(page)
    expect(page.get_by_role("heading", name="Explore")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Success — 0 → "))).to_be_visible()  # row #1: digit 0, a success
    no_exception(page)
    screenshot(page, "browser_evaluate_explore.png")


# ---- Live runs: a click elsewhere, Streamlit's own Stop, the Run button in view (issue 11 item 6) ---------------

def start_long_run(tab) -> str:
    """EAD on Explore with 1 × 5000 iterations and no early abort (seconds to reach iteration 30); the progress line
    once it has."""
    tab.get_by_role("button", name="Run attack").click()
    tab.get_by_test_id("stProgress").wait_for(timeout=60_000)
    tab.wait_for_function("() => /iteration ([3-9]\\d|\\d{3,}|\\d,\\d{3}) of (at most )?5,000/.test("
                          "document.querySelector('[data-testid=\"stProgress\"]')?.innerText || '')",
                          timeout=RUN_TIMEOUT_MS)
    return tab.get_by_test_id("stProgress").inner_text()


def kept_result(tab, reason: str) -> None:
    """The stopped run's result is on the page with why it stopped, and no progress box is left."""
    tab.get_by_test_id("stCaptionContainer").filter(has_text=reason).wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(tab)
    expect(tab.get_by_text(re.compile(r"\d+ iterations in .* stopped early, best so far"))).to_have_count(1)
    expect(tab.get_by_test_id("stMetric").filter(has_text="ℓ1")).to_have_count(1, timeout=60_000)
    expect(tab.get_by_test_id("stProgress")).to_have_count(0, timeout=60_000)
    expect(tab.get_by_role("button", name="Stop", exact=True)).to_have_count(0, timeout=60_000)
    no_exception(tab)


def test_a_click_elsewhere_or_streamlits_own_stop_keeps_the_result_and_says_why(server, page):
    """Issue 11 item 6. A click on the image box while an attack runs: the result so far is shown with "the page
    was changed during the run". Streamlit's own Stop (top right) during the next run: the result is shown at once,
    without another click, "stopped by you", and no frozen progress box with a live-looking Stop remains."""
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Explore").wait_for(timeout=120_000)
    wait_idle(page)
    for width, height in ((1440, 900), (1280, 800)):  # issue 11: Run was below the fold at both sizes
        page.set_viewport_size({"width": width, "height": height})
        box = page.get_by_role("button", name="Run attack").bounding_box()
        assert box is not None and box["y"] + box["height"] <= height, (width, height, box)
    for name, value in (("binary-search steps", "1"), ("iterations per step", "5000")):
        box = page.get_by_role("spinbutton", name=name)
        box.fill(value)
        box.press("Tab")
    page.get_by_test_id("stCheckbox").filter(has_text="abort early").click()
    text = start_long_run(page)
    assert re.search(r"[\d.]+ s elapsed · c-step 1 of 1 · iteration [\d,]+ of 5,000 · [\d.,]+ it/s · about "
                     r"[\d.]+ (s|min \d+ s) left", text), text
    choose(page, "Image", "digit 3 (#3)")  # a click elsewhere: Streamlit stops the running script
    kept_result(page, "Stopped because the page was changed during the run")
    screenshot(page, "live_click_elsewhere.png")

    start_long_run(page)
    page.get_by_test_id("stStatusWidget").get_by_role("button", name="Stop").click()
    kept_result(page, "Stopped by you with Streamlit's own Stop")
    screenshot(page, "live_toolbar_stop.png")


def test_a_browser_reload_keeps_the_result(server, page):
    """Issue 11 item 9: after a reload the session's results were gone. The history lives on the server's disk under
    the URL's session id (tests/conftest.py points it at a temporary folder), so a reload brings the result back."""
    page.goto(f"{server}/?image=mnist:3&target=5&binary_search_steps=1&steps=30&initial_const=10",
              wait_until="domcontentloaded")  # a configuration link with a reduced budget
    page.get_by_role("button", name="Run attack").click(timeout=120_000)
    headline = page.get_by_text(re.compile(r"^EAD-FISTA on digit 3 \(#3\)"))
    headline.wait_for(timeout=RUN_TIMEOUT_MS)
    l2 = page.get_by_test_id("stMetric").filter(has_text="ℓ2").get_by_test_id("stMetricValue")
    value = l2.inner_text()
    assert re.search(r"[?&]session=[0-9a-f]{32}", page.url) and "steps=30" in page.url

    page.reload(wait_until="domcontentloaded")
    headline.wait_for(timeout=120_000)
    expect(l2).to_have_text(value, timeout=60_000)
    expect(page.get_by_text(re.compile(r"From this session's history \(run #1\)"))).to_be_visible()
    no_exception(page)


# ---- Several sessions against one server (issue 11 item 1) -------------------------------------------------------

SESSION_ATTACKS = ("C&W L2", "EAD-FISTA", "EAD-ISTA", "COV", "StrAttack", "I-FGM")
PANEL_KEYS = ("delta", "groups", "asm", "cam", "top5", "loss")  # Explore's plotly panels, keyed explore.<name>


def prepare(page, url: str, digit: int, attack: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Explore").wait_for(timeout=120_000)
    wait_idle(page)
    choose(page, "Image", f"digit {digit} (#{digit})")
    expect(page.get_by_text(f"True class {digit}")).to_be_visible(timeout=60_000)
    page.get_by_role("radio", name=attack, exact=True).click()
    wait_idle(page)


def assert_own_result(page, digit: int, attack: str) -> None:
    """This session's result is its own attack on its own digit, judged by the model, with every panel drawn."""
    page.get_by_text(re.compile(rf"^{re.escape(attack)} on digit {digit} \(#{digit}\)")).wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    verdict = page.get_by_test_id("stAlert").filter(has_text=re.compile(rf"(Success — {digit} → |Failed — still {digit})"))
    expect(verdict).to_have_count(1, timeout=60_000)
    screenshot(page, f"browser_session_{attack.replace('&', '').replace(' ', '_')}_{digit}.png")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(len(PANEL_KEYS), timeout=60_000)
    expect(page.get_by_text("Not computed.")).to_have_count(0)
    expect(page.get_by_text(re.compile("ran \\d+ times in one forward pass"))).to_have_count(0)
    no_exception(page)


def server_log_since(offset: int) -> str:
    with open(ARTIFACTS / "streamlit.log", encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return f.read()


def test_six_sessions_attack_at_once_and_each_keeps_its_own_result_and_panels(server, browser):
    """Six browser sessions, each a different attack on a different digit, all started before any finishes. They
    share the server's one cached model (the CAM hooks once broke other sessions' panels: "Layer '8' ran 7 times in
    one forward pass"). The app's MNIST CPU defaults, so the six runs take about a minute on two cores."""
    log_start = (ARTIFACTS / "streamlit.log").stat().st_size
    sessions = []
    try:
        for k, attack in enumerate(SESSION_ATTACKS):
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            page = context.new_page()
            sessions.append((context, page, k + 1, attack))
            prepare(page, server, k + 1, attack)
        for _, page, _, _ in sessions:  # six runs in flight at once
            page.get_by_role("button", name="Run attack").click()
        for _, page, digit, attack in sessions:
            assert_own_result(page, digit, attack)
        screenshot(sessions[4][1], "browser_six_sessions_strattack.png")
    finally:
        for context, *_ in sessions:
            context.close()
    log = server_log_since(log_start)
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]


def test_one_session_draws_its_panels_while_another_attacks(server, browser):
    """Session A runs a long attack; meanwhile session B runs a short one and draws its ASM and CAM panels through
    the same shared model. B's panels are complete while A is still running; A then finishes with its own panels."""
    log_start = (ARTIFACTS / "streamlit.log").stat().st_size
    a_context = browser.new_context(viewport={"width": 1280, "height": 800})
    b_context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        a, b = a_context.new_page(), b_context.new_page()
        prepare(a, server, 7, "EAD-FISTA")
        for name, value in (("binary-search steps", "1"), ("iterations per step", "3000")):
            box = a.get_by_role("spinbutton", name=name)
            box.fill(value)
            box.press("Tab")
        a.get_by_test_id("stCheckbox").filter(has_text="abort early").click()  # so A surely outlasts B
        prepare(b, server, 8, "C&W L2")
        a.get_by_role("button", name="Run attack").click()
        a.get_by_test_id("stProgress").wait_for(timeout=60_000)
        b.get_by_role("button", name="Run attack").click()
        assert_own_result(b, 8, "C&W L2")
        assert a.get_by_test_id("stProgress").count() == 1, "A finished before B drew its panels: no overlap tested"
        assert_own_result(a, 7, "EAD-FISTA")
    finally:
        a_context.close()
        b_context.close()
    log = server_log_since(log_start)
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]
