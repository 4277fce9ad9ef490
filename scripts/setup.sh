#!/usr/bin/env bash
# Sets SOL up on a fresh Debian-like machine, then runs the main job.
#
#   scripts/setup.sh                      # set up, then: python examples/main.py
#   scripts/setup.sh --model mobilenet_v2 # arguments go to examples/main.py
#   scripts/setup.sh --no-run             # set up only (what .ci/run uses)
#
# Steps: apt packages (when missing and we may install them), a virtual
# environment in .venv, torch/torchvision from constraints.txt, then SOL
# itself (`pip install -e .`, which builds the C++ core and the extension).
# Environment: PYTHON (default python3), SOL_VENV (default .venv),
# SOL_APT_PACKAGES (default below).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

RUN_MAIN=1
MAIN_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --no-run) RUN_MAIN=0 ;;
    *) MAIN_ARGS+=("$arg") ;;
  esac
done

PYTHON=${PYTHON:-python3}
VENV=${SOL_VENV:-$ROOT/.venv}
# ocl-icd-opencl-dev: Debian builds oneDNN with its OpenCL GPU runtime, so its
# CMake config fails without the OpenCL headers and library (apt does not pull
# them in with --no-install-recommends).
read -r -a APT_PACKAGES <<< "${SOL_APT_PACKAGES:-g++ cmake libgtest-dev libxxhash-dev libdnnl-dev ocl-icd-opencl-dev}"

say() { printf '\n== %s\n' "$*"; }

# ---- system packages
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then APT_PACKAGES+=(python3-venv); fi
if ! "$PYTHON" -c 'import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null; then
  APT_PACKAGES+=(python3-dev)
fi
if command -v dpkg-query >/dev/null; then
  MISSING=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || MISSING+=("$pkg")
  done
  if ((${#MISSING[@]})); then
    say "apt packages missing: ${MISSING[*]}"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
      if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
        echo "error: not root and no password-less sudo; install them first: apt-get install ${MISSING[*]}" >&2
        exit 1
      fi
    fi
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${MISSING[@]}"
  fi
else
  echo "note: no dpkg here; make sure these are installed: ${APT_PACKAGES[*]}" >&2
fi

# ---- Python environment
if [[ ! -x $VENV/bin/python ]]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
# the pins apply to pip's isolated build environment too
export PIP_CONSTRAINT=$ROOT/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1

say "installing torch, torchvision, numpy, pytest (pinned in constraints.txt)"
"$PY" -m pip install --quiet torch torchvision numpy pytest

# the C++ tests (scripts/test.sh) need CMake >= 3.24; Debian's may be older
if ! "$PY" - <<'PYEOF'
import re, subprocess, sys
try:
    out = subprocess.run(["cmake", "--version"], capture_output=True, text=True).stdout
except OSError:
    sys.exit(1)
m = re.search(r"(\d+)\.(\d+)", out)
sys.exit(0 if m and (int(m[1]), int(m[2])) >= (3, 24) else 1)
PYEOF
then
  say "installing a newer cmake into $VENV (the system's is missing or older than 3.24)"
  "$PY" -m pip install --quiet "cmake>=3.24"
fi

say "building and installing sol (pip install -e .)"
"$PY" -m pip install --quiet -e "$ROOT"
"$PY" -c 'import sol.pytorch' || { echo "error: sol.pytorch does not import after the install" >&2; exit 1; }

if ((RUN_MAIN)); then
  say "main job: examples/main.py ${MAIN_ARGS[*]-}"
  exec "$PY" "$ROOT/examples/main.py" "${MAIN_ARGS[@]}"
fi
say "set up; run the tests with scripts/test.sh"
