"""Screenshots of every page of the running app, for the README and for looking at the layout.

    python scripts/screenshots.py [--out docs/screenshots] [--sizes 1280x800,1920x1080] [--pages explore,compare]
    python scripts/screenshots.py --model efficientnet-lite0 --pages explore,compare --sizes 1280x800

Starts ``streamlit run app.py`` on a free port, drives each page with Playwright and Debian's chromium
(``/usr/bin/chromium``; override with ``CHROMIUM``), runs the page's attack with the form's starting budget,
and writes ``<page>.png`` (full page at the first size: the README's pictures); ``--review`` adds the viewport and
the full page at every size, for checking the layout. ``--model`` opens the app through a configuration link
(``?model=…``) and moves between pages in that one session, writing ``<page>_<model>.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
RUN_TIMEOUT_MS = 300_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(port: int, log_path: Path | None = None) -> Iterator[str]:
    """``streamlit run app.py`` on localhost:port until the block ends; yields the base URL."""
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless",
           "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {proc.returncode}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            time.sleep(0.5)
        else:
            raise RuntimeError("streamlit did not become healthy within 120 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log_path:
            log.close()


def wait_idle(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the script has finished running (Streamlit's status widget is gone)."""
    page.wait_for_timeout(400)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
    page.wait_for_timeout(600)


def goto(page, url: str, path: str = "") -> None:
    page.goto(f"{url}/{path}", wait_until="domcontentloaded")
    page.get_by_role("heading", level=1).first.wait_for(timeout=180_000)
    wait_idle(page)


def click_button(page, name: str) -> None:
    page.get_by_role("button", name=name).first.click()


def run_page(page, name: str) -> None:
    """Press the page's main button and wait for the result, so the screenshot shows a finished run."""
    buttons = {"explore": "Run attack", "compare": "Run all four", "sweep": "Run sweep",
               "teach": "Run the three optimisers"}
    if name in buttons:
        click_button(page, buttons[name])
        wait_idle(page)


def full_page_shot(page, path: Path, width: int, height: int) -> None:
    """The whole page: Streamlit scrolls inside its main container, so grow the viewport to its content."""
    content = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
        " return Math.max(m.scrollHeight, document.body.scrollHeight); }")
    page.set_viewport_size({"width": width, "height": max(height, int(content) + 40)})
    wait_idle(page)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(300)


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--sizes", default="1280x800,1920x1080")
    parser.add_argument("--pages", default="explore,compare,sweep,teach")
    parser.add_argument("--model", help="another model than the default, chosen through a configuration link")
    parser.add_argument("--no-run", action="store_true", help="do not press the run buttons")
    parser.add_argument("--review", action="store_true",
                        help="also write <page>_<W>x<H>.png (viewport) and <page>_<W>x<H>_full.png for every size")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    with serve(free_port(), args.out / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": sizes[0][0], "height": sizes[0][1]})
        page = context.new_page()
        if args.model:
            goto(page, url, f"?model={args.model}")
        for name in args.pages.split(","):
            if not args.model:
                goto(page, url, "" if name == "explore" else name)
            elif name != "explore":  # the same session, so the model chosen by the link stays
                page.get_by_test_id("stSidebarNav").get_by_role("link", name=name.title()).click()
                page.get_by_role("heading", level=1).first.wait_for(timeout=180_000)
                wait_idle(page)
            stem = f"{name}_{args.model}" if args.model else name
            if not args.no_run:
                run_page(page, name)
            for k, (w, h) in enumerate(sizes):
                page.set_viewport_size({"width": w, "height": h})
                wait_idle(page)
                if k == 0:
                    full_page_shot(page, args.out / f"{stem}.png", w, h)
                if args.review:
                    page.screenshot(path=str(args.out / f"{stem}_{w}x{h}.png"))
                    full_page_shot(page, args.out / f"{stem}_{w}x{h}_full.png", w, h)
                print(f"{name} {w}x{h} done", flush=True)
            page.set_viewport_size({"width": sizes[0][0], "height": sizes[0][1]})
        browser.close()
    (args.out / "streamlit.log").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
