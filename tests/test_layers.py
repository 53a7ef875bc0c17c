"""Imports point down only: app_pages/app → ui → advlens → interpret → attacks; only ui/, app.py and app_pages/ import
streamlit. Checked twice: in the source text (every import statement) and by importing the core in a clean
interpreter and looking at what got loaded."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package → the first-party packages it may import
ALLOWED = {"attacks": {"attacks"}, "interpret": {"interpret", "attacks"},
           "advlens": {"advlens", "interpret", "attacks"}}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down_and_never_reach_streamlit(package):
    first_party = {"attacks", "interpret", "advlens", "ui", "app_pages", "app"}
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top != "streamlit", f"{path.relative_to(ROOT)} imports streamlit"
            if top in first_party:
                assert top in ALLOWED[package], f"{path.relative_to(ROOT)} imports {name}"


def test_the_core_loads_without_streamlit():
    code = ("import sys, advlens.cli, advlens.engine, advlens.report, advlens.explain, advlens.presets, "
            "interpret.metrics, attacks.registry; print('streamlit' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
