#!/usr/bin/env bash
# Create .venv and install udcshield with everything the pipeline and the tests need.
# - On a machine whose python3 already has torch (a GPU box), the venv sees it (--system-site-packages)
#   and torch is not reinstalled; elsewhere torch==2.13.0 (CPU build) is installed.
# - udcshield goes in editable with the extras `pipeline` (Prefect, Dask, DVC), `test` and `docs`; the
#   library alone (`pip install .`) needs none of them.
# - torchattacks, used only by the cross-check tests (tests/attacks/test_torchattacks_parity.py), goes in
#   with --no-deps: its metadata pins requests~=2.25 and asks for torchvision, neither of which it imports.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c "import torch" 2>/dev/null; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "${PIP[@]}" install "torch==2.13.0"
fi
"${PIP[@]}" install -e ".[pipeline,test,docs]"
"${PIP[@]}" install --no-deps "torchattacks==3.5.1"
"$VENV/bin/python" -c "import torch, torchattacks, prefect, dvc, zarr, diffusers; print('udcshield environment ready: torch', torch.__version__)"
touch "$VENV/.installed"
