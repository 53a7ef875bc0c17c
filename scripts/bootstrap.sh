#!/usr/bin/env bash
# Installs uv into .uv/ from any python3 with pip and sets UV to it; the scripts that source this then install
# the locked environment (uv.lock) into .venv/ with it. `pip install --target` puts uv beside the project instead
# of into the interpreter, so it also works with a distribution's externally managed python3 (PEP 668: Debian,
# Ubuntu) without --break-system-packages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .uv/bin/uv ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target .uv uv
fi
UV="$PWD/.uv/bin/uv"
