"""How long each paper preset's run takes here: press the preset, then the page's own button, in AppTest (the
app's code path, in-process), and time the second step.

    python -m benchmarks.paper_presets
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from ui.paper_presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def time_preset(k: int) -> float:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    at.run()
    at.button(key=f"paper_preset.{k}").click().run()
    run = next(b for b in [*at.button, *at.get("form_submit_button")] if b.label == PRESETS[k].button)
    started = time.perf_counter()
    run.click().run()
    seconds = time.perf_counter() - started
    assert not at.exception, at.exception
    return seconds


def main() -> None:
    print(f"{platform.machine()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    for k, preset in enumerate(PRESETS):
        print(f"{preset.source}: {preset.name} · press {preset.button}: {time_preset(k):.1f} s "
              f"(the preset says {preset.seconds})", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
