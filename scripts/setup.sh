#!/usr/bin/env bash
# Create .venv and install Peel into it. torch==2.13.0 (CPU) goes in first: a bare `torch`
# requirement could otherwise resolve to a multi-GB CUDA build. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: Peel needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# -qq: errors only (some machines' pip configs print a warning per package otherwise).
if ! .venv/bin/python -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
    echo "setup: installing torch 2.13.0 (CPU) into .venv"
    .venv/bin/pip install -qq "torch==2.13.0"
fi
echo "setup: installing Peel and its dependencies into .venv"
.venv/bin/pip install -qq -e ".[test]"
