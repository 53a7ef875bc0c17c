#!/usr/bin/env bash
# Sets everything up on a fresh machine (python3 and pip only) and runs the app on the offline default model.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
exec "$UV" run --frozen streamlit run app.py "$@"
