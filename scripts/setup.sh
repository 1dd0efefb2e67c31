#!/usr/bin/env bash
# Create .venv and install Peel into it, with pip's own progress lines ("Collecting ...",
# "Downloading ...", "Installing collected packages ...") under a step counter, so a first
# install of several minutes is never silent. torch==2.13.0 (CPU) goes in first: a bare `torch`
# requirement could otherwise resolve to a multi-GB CUDA build.
#
# A finished install leaves a stamp, .venv/.peel-install, holding the SHA-256 of pyproject.toml
# and this script: while both are unchanged (and .venv/bin/peel exists) the install is skipped,
# so `make demo` a second time starts the run at once. Change either file, or delete the stamp,
# and the next call installs again. PEEL_VENV names another environment folder (tests use it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${PEEL_VENV:-.venv}
STAMP="$VENV/.peel-install"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: Peel needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
    exit 2
fi
key=$(cat pyproject.toml scripts/setup.sh | "$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ -x "$VENV/bin/peel" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$key" ]; then
    echo "setup: $VENV is up to date (pyproject.toml and scripts/setup.sh unchanged since the last install)"
    exit 0
fi
rm -f "$STAMP"  # an interrupted install must not look finished
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ -x "$VENV/bin/python" ]; then
    echo "setup [1/3] $VENV exists"
else
    echo "setup [1/3] creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
if "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
    echo "setup [2/3] torch 2.13.0 (CPU) already installed"
else
    echo "setup [2/3] installing torch 2.13.0 (CPU, about 200 MB to download; the longest step)"
    "$VENV/bin/python" -m pip install --progress-bar on "torch==2.13.0"
fi
echo "setup [3/3] installing Peel and its dependencies (Flower, Ray, Opacus, pandas, matplotlib, ...)"
"$VENV/bin/python" -m pip install --progress-bar on -e ".[test]"
echo "$key" > "$STAMP"
echo "setup: done. Put peel on your PATH with: source $VENV/bin/activate   (or call $VENV/bin/peel)"
