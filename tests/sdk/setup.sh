#!/usr/bin/env bash
# Creates (idempotently) a Python virtualenv with Stytch's official Python SDK, pinned, for
# tests/sdk/verdict.py, and prints the venv's python path on stdout (everything else goes to
# stderr).
#
#   tests/sdk/setup.sh [VENV_DIR]      # default: ${CARGO_TARGET_DIR:-target}/sdk-venv
#
# Needs python3.11 (or python3 >= 3.9, or $PYTHON) with the venv module, and PyPI. Running it
# again reuses the venv when it already has the pinned version.
set -euo pipefail

STYTCH_VERSION="15.3.0"
venv="${1:-${CARGO_TARGET_DIR:-target}/sdk-venv}"

python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
      python="$candidate"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "setup.sh: no python3.11 or python3 on PATH (set PYTHON)" >&2
  exit 3
fi

# Tests run in parallel and share one venv: one setup at a time (a second `python -m venv`
# over a venv being built leaves it without pip).
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  # Absent, or left half-built by an interrupted run: build it afresh.
  "$python" -m venv --clear "$venv" >&2
fi
if ! "$venv/bin/python" -c "import stytch, sys; sys.exit(stytch.__version__ != '$STYTCH_VERSION')" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "stytch==$STYTCH_VERSION" >&2
fi
echo "$venv/bin/python"
