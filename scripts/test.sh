#!/usr/bin/env bash
# Sets everything up on a fresh machine (python3 and pip only) and runs the static checks and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
"$UV" sync --frozen --extra test --extra peers --extra train --extra ray
# The browser tests drive Debian's chromium (Playwright's own browser download does not work offline).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
RUN=("$UV" run --frozen --extra test --extra peers --extra train --extra ray)
# Static checks first: they take seconds and say exactly where a drift is.
"${RUN[@]}" ruff check .
"${RUN[@]}" mypy
exec "${RUN[@]}" pytest "$@"
