"""Display knobs: how long after the input event a result's panels are redrawn (issue 11: under 0.5 s on MNIST).

    python -m benchmarks.bench_display [--repeats 5] [--pages explore,compare] [--wait SECONDS]

Starts ``streamlit run app.py`` on a free port, drives Debian's chromium (``/usr/bin/chromium``; override with
``CHROMIUM``) with Playwright at 1280×800, runs the page's default attack on its default MNIST digit with the form's
starting budget, then changes each display knob ``--repeats`` times. Each change is timed in the page, from the
input event (the option's pointerdown, the slider key's keydown, the toggle's click; caught by a capture listener)
until (a) the panel the knob changes has new content (a hash of the chart's SVG, which holds the heat maps'
images, differs from the one before the event) and (b) Streamlit's running indicator (``stStatusWidget``) is gone,
checked on every animation frame. Prints a markdown table: knob, panel watched, median, max, n (seconds), and the
median time until the last websocket message before the redraw (stamped when the page's main thread handles it,
so a browser busy drawing delays it too: an upper bound on the server's share). Also printed: how long after the
first result's headline the first chart and the CAM quartet appear (the first chart loads plotly.js).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from benchmarks.cold_start import CHROMIUM, CHROMIUM_ARGS, free_port
from scripts.screenshots import serve

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_MS = 300_000
REDRAW_TIMEOUT_MS = 60_000

# In-page instrumentation: the first input event after arming is t0; ``redrawn(i)`` is true (and stamps t1) once
# chart i's content differs from the content at arming time and no script run is in progress.
INSTRUMENT = """() => {
  if (window.__bench) return;
  const hash = (s) => { let h = 0; for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return h; };
  const chart = (i) => document.querySelectorAll('[data-testid="stPlotlyChart"]')[i];
  const sig = (i) => { const c = chart(i); return c ? hash(c.innerHTML) : null; };
  window.__bench = {t0: null, t1: null, armed: false, before: null, sig,
    arm(i) { this.t0 = null; this.t1 = null; this.before = sig(i); this.armed = true; },
    redrawn(i) {
      if (this.t0 === null) return false;
      if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
      const now = sig(i);
      if (now === null || now === this.before) return false;
      this.t1 = performance.now();
      return true;
    }};
  const stamp = () => { const b = window.__bench; if (b.armed) { b.t0 = performance.now(); b.armed = false; } };
  for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, stamp, true);
}"""


# Before the app's scripts load: the arrival time of every websocket message (the server's deltas), so a redraw
# splits into the server's part (event → the last message before the redraw) and the browser's (the rest).
WS_TIMES = """(() => {
  window.__wsTimes = [];
  const Native = window.WebSocket;
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener('message', () => window.__wsTimes.push(performance.now()));
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();"""


def wait_idle(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    page.wait_for_timeout(400)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_timeout(600)


def timed(page, chart: int, action) -> tuple[float, float]:
    """(seconds from the input event ``action`` causes to chart ``chart`` redrawn and the run over, seconds of
    that until the server's last message before the redraw)."""
    page.evaluate(INSTRUMENT)
    page.evaluate(f"() => window.__bench.arm({chart})")
    action()
    page.wait_for_function(f"() => window.__bench.redrawn({chart})", polling="raf", timeout=REDRAW_TIMEOUT_MS)
    total, server = page.evaluate("""() => { const b = window.__bench;
      const last = Math.max(b.t0, ...window.__wsTimes.filter(t => t <= b.t1));
      return [(b.t1 - b.t0) / 1000, (last - b.t0) / 1000]; }""")
    wait_idle(page)  # any rerun the change caused is over before the next one
    return float(total), float(server)


def slider_knob(page, label: str, chart: int, repeats: int) -> list[tuple[float, float]]:
    """Press → then ← on the slider's thumb, alternately: one step each."""
    thumb = page.get_by_test_id("stSlider").filter(has=page.get_by_text(label, exact=True)).get_by_role("slider")
    out = []
    for k in range(repeats):
        thumb.focus()
        out.append(timed(page, chart, lambda k=k: page.keyboard.press("ArrowRight" if k % 2 == 0 else "ArrowLeft")))
    return out


def select_knob(page, label: str, options: list[str], chart: int, repeats: int) -> list[tuple[float, float]]:
    """Open the select box, then pick the next option (the pick is the timed event)."""
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True))
    out = []
    for k in range(repeats):
        option = page.get_by_role("option", name=options[(k + 1) % len(options)], exact=True).first
        for _ in range(3):  # a click that lands while the page settles may not open the list
            box.locator("input").click()
            try:
                option.wait_for(timeout=5_000)
                break
            except Exception:
                page.keyboard.press("Escape")
        out.append(timed(page, chart, option.click))
    return out


def toggle_knob(page, label: str, chart: int, repeats: int) -> list[tuple[float, float]]:
    toggle = page.get_by_test_id("stCheckbox").filter(has=page.get_by_text(label, exact=True)).locator("label")
    return [timed(page, chart, toggle.click) for _ in range(repeats)]


def first_panels(page, words: str) -> None:
    """Print how long after the result's headline (drawn once the ASM and CAMs are computed) the first chart (δ)
    and the CAM quartet are on the page: the first plotly chart of a page loads plotly.js in the browser."""
    headline = time.perf_counter()
    shown = page.evaluate("() => performance.now()")
    charts = page.get_by_test_id("stPlotlyChart")
    charts.first.wait_for(timeout=RUN_TIMEOUT_MS)
    first = time.perf_counter()
    charts.nth(3).wait_for(timeout=RUN_TIMEOUT_MS)
    cam = time.perf_counter()
    wait_idle(page)
    last = page.evaluate(f"() => (Math.max({shown}, ...window.__wsTimes) - {shown}) / 1000")
    print(f"Explore, {words}: δ panel {first - headline:.2f} s and CAM quartet {cam - headline:.2f} s after the "
          f"result's headline; the server's last message of that run came {last:.2f} s after the headline", flush=True)
    wait_idle(page)


def explore(page, url: str, repeats: int, wait_s: float = 0.0) -> list[tuple[str, str, list[tuple[float, float]]]]:
    """Explore's knobs. Charts in page order: δ 0, groups 1, ASM 2, CAMs 3, top-5 4, loss 5."""
    from ui.colours import CMAPS

    page.goto(url, wait_until="domcontentloaded")
    opened = time.perf_counter()
    page.get_by_role("heading", name="Explore").wait_for(timeout=180_000)
    wait_idle(page)
    page.wait_for_timeout(1000 * wait_s)  # e.g. until the background import of the CAM library is over
    pressed = time.perf_counter()
    page.get_by_role("button", name="Run attack").click()
    page.get_by_test_id("stAlert").filter(has_text="— ").first.wait_for(timeout=RUN_TIMEOUT_MS)
    first_panels(page, f"Run pressed {pressed - opened:.1f} s after the page was opened")
    return [
        ("Explore · colour map", "CAM quartet", select_knob(page, "Colour map", list(CMAPS), 3, repeats)),
        ("Explore · overlay opacity", "CAM quartet", slider_knob(page, "Overlay opacity", 3, repeats)),
        ("Explore · ν · IS percentile", "ASM + B_ASM", slider_knob(page, "ν · IS percentile", 2, repeats)),
    ]


def compare(page, url: str, repeats: int, wait_s: float = 0.0) -> list[tuple[str, str, list[tuple[float, float]]]]:
    """Compare's knobs, after its default line-up (four attacks). Charts: per attack δ, groups, δ∩B_ASM; the
    last column's δ∩B_ASM is chart 11."""
    from ui.colours import CMAPS

    page.goto(f"{url}/compare", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Compare").wait_for(timeout=180_000)
    wait_idle(page)
    page.get_by_role("button", name="Run all four").click()
    page.get_by_role("heading", name="Metrics").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    page.get_by_test_id("stPlotlyChart").nth(12).wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    return [
        ("Compare · colour map", "last δ∩B_ASM", select_knob(page, "Colour map", list(CMAPS), 11, repeats)),
        ("Compare · overlay opacity", "last δ∩B_ASM", slider_knob(page, "Overlay opacity", 11, repeats)),
        ("Compare · ν · IS percentile", "last δ∩B_ASM", slider_knob(page, "ν · IS percentile", 11, repeats)),
        ("Compare · one colour range", "last δ∩B_ASM",
         toggle_knob(page, "One colour range across the attacks", 11, repeats)),
    ]


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pages", default="explore,compare")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="seconds to wait on the first page before pressing Run (the CAM library's import runs "
                             "in the background from 3 s after the first page)")
    parser.add_argument("--log", type=Path, default=ROOT / "test-artifacts" / "bench_display_streamlit.log")
    args = parser.parse_args(argv)
    pages = {"explore": explore, "compare": compare}
    args.log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.1f} at the start; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    rows: list[tuple[str, str, list[tuple[float, float]]]] = []
    with serve(free_port(), args.log) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(WS_TIMES)
        page = context.new_page()
        for name in args.pages.split(","):
            measured = pages[name](page, url, args.repeats, args.wait if name == args.pages.split(",")[0] else 0.0)
            for knob, _, times in measured:
                print(f"{knob}: " + ", ".join(f"{t:.3f} (server {s:.3f})" for t, s in times), flush=True)
            rows += measured
        browser.close()
    print("\n| knob | panel watched | median (s) | max (s) | n | median until the server's last message (s) |\n"
          "|---|---|---:|---:|---:|---:|")
    for knob, panel, times in rows:
        total = [t for t, _ in times]
        server = statistics.median(s for _, s in times)
        print(f"| {knob} | {panel} | {statistics.median(total):.2f} | {max(total):.2f} | {len(total)} | {server:.2f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
