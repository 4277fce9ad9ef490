#!/usr/bin/env bash
# Runs every test: the C++ unit tests (GoogleTest through CTest), then the
# Python tests (pytest: numerics against PyTorch, must-fail cases, cache).
# Both tiers always run; the exit status is non-zero if either failed.
#
#   scripts/test.sh               # everything
#   scripts/test.sh -k conv -x    # extra arguments go to pytest
#
# Needs scripts/setup.sh --no-run first. Environment: SOL_VENV (default .venv),
# SOL_CPP_BUILD_DIR (default build/cpp), JOBS (default: number of cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=${SOL_VENV:-$ROOT/.venv}
PY=$VENV/bin/python
BUILD=${SOL_CPP_BUILD_DIR:-$ROOT/build/cpp}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

[[ -x $PY ]] || { echo "error: no $PY; run scripts/setup.sh --no-run first" >&2; exit 1; }
# a cmake that setup.sh put into the venv (when the system's was too old) wins
export PATH="$VENV/bin:$PATH"

start=$(date +%s)
echo "== C++ unit tests ($BUILD)"
cpp_rc=0
{
  cmake -S "$ROOT" -B "$BUILD" -DSOL_BUILD_TESTS=ON -DPython_EXECUTABLE="$PY" &&
    cmake --build "$BUILD" -j"$JOBS" &&
    # --no-tests=error: an empty test list is a failure, not a pass
    ctest --test-dir "$BUILD" --output-on-failure --no-tests=error -j"$JOBS"
} || cpp_rc=$?
cpp_done=$(date +%s)

echo "== Python tests (pytest)"
py_rc=0
"$PY" -m pytest "$@" || py_rc=$?
if ((py_rc == 5)); then
  echo "error: pytest collected no tests (exit 5)" >&2
fi
end=$(date +%s)

echo "== C++ tests: exit $cpp_rc, $((cpp_done - start)) s; Python tests: exit $py_rc, $((end - cpp_done)) s"
if ((cpp_rc != 0 || py_rc != 0)); then
  echo "== FAILED" >&2
  exit 1
fi
echo "== all tests passed"
