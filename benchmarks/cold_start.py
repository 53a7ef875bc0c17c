"""Cold start: how long after the server answers its health check the first page is usable.

    python -m benchmarks.cold_start [--repeats 3] [--app app.py] [--floor]

Each repeat starts a fresh ``streamlit run app.py --server.headless true`` on a free port, polls
``/_stcore/health`` until it answers, then opens the page in Playwright + Debian's chromium
(``/usr/bin/chromium``; override with ``CHROMIUM``) and times, from the health answer, when the image picker
(the "Image" select box) and the attack form's submit button ("Run attack") are visible. The browser and a blank
tab are opened before the server starts, so their own start-up is not counted. Also reported: the server's own
start (launch → health), the page's load event (the front end's scripts), the page header, and when the first
script run is over. Prints one line per repeat and the medians. ``--floor`` also measures, interleaved, a stub page
with the same milestones and no app code (a title, an "Image" select box, a form): what Streamlit and the browser
alone cost on the machine as loaded at that moment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
TIMEOUT_S = 120.0
FLOOR_APP = """import streamlit as st
st.set_page_config(layout="wide")
st.title("Explore")
st.selectbox("Image", ["digit 0 (#0)", "digit 1 (#1)"])
with st.form("f"):
    st.number_input("κ · confidence")
    st.form_submit_button("Run attack")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen) -> float:
    """Poll the health endpoint every 20 ms; the time it first answered 200."""
    deadline = time.perf_counter() + TIMEOUT_S
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter()
        time.sleep(0.02)
    raise RuntimeError(f"no health answer within {TIMEOUT_S:.0f} s")


def one_start(browser, app: str) -> dict[str, float]:
    """One fresh server: seconds from launch to health, and from health to each milestone."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", app, "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    launched = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()  # an open, blank tab: its start-up is the browser's, not the app's
    try:
        url = f"http://127.0.0.1:{port}"
        healthy = wait_healthy(url, proc)
        page.goto(url, wait_until="commit")
        timeout = TIMEOUT_S * 1000
        page.wait_for_load_state("load", timeout=timeout)
        loaded = time.perf_counter()
        page.get_by_role("heading", level=1).first.wait_for(timeout=timeout)
        header = time.perf_counter()
        page.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Image", exact=True)).wait_for(
            timeout=timeout)
        picker = time.perf_counter()
        page.get_by_role("button", name="Run attack").wait_for(timeout=timeout)
        form = time.perf_counter()
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
        idle = time.perf_counter()
        return {"server start → health": healthy - launched, "page load": loaded - healthy,
                "header": header - healthy, "image picker": picker - healthy, "form": form - healthy,
                "usable": max(picker, form) - healthy, "script done": idle - healthy}
    finally:
        context.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--app", default="app.py")
    parser.add_argument("--floor", action="store_true", help="also time a stub page with no app code, interleaved")
    args = parser.parse_args(argv)
    print(f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.1f}; seconds after /_stcore/health answers", flush=True)
    apps = {"app": args.app}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        if args.floor:
            apps["floor"] = str(Path(tmp) / "floor.py")
            Path(apps["floor"]).write_text(FLOOR_APP)
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in apps}
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for k in range(args.repeats):
            for name, app in apps.items():
                row = one_start(browser, app)
                rows[name].append(row)
                print(f"{name} start {k + 1}: " + " · ".join(f"{m} {v:.2f}" for m, v in row.items()), flush=True)
        browser.close()
    for name, measured in rows.items():
        print(f"{name} median: " + " · ".join(f"{m} {statistics.median(r[m] for r in measured):.2f}"
                                             for m in measured[0]))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
