"""The compile cache, the compiler driver and the user tools, each in fresh processes.

Every test here gets its own cache folder (pytest's tmp_path), so none disturbs
the session cache that the numerics tests share.
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from solcheck import cache_files, run_child, shared_objects, sol

pytestmark = pytest.mark.subprocess
SOURCE_SUFFIXES = (".cpp", ".cc", ".cxx", ".c")


def paths_in(text):
    """Absolute paths mentioned in a message, without trailing punctuation."""
    return [p.rstrip(".,:;)]'") for p in re.findall(r"/[^\s'\"<>]+", text)]


def result_of(proc):
    """The RESULT line that _child.py prints, after checking the child succeeded."""
    assert proc.returncode == 0, (
        f"child exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr[-6000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no RESULT line\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def assert_correct(result):
    for key, value in result.items():
        if key.endswith("error"):
            assert value <= 1e-4, f"{key} = {value:.3e}"


def test_cache_dir_follows_SOL_CACHE_DIR(session_cache_dir):
    assert os.path.realpath(sol.cache.dir()) == os.path.realpath(session_cache_dir)


def test_python_m_sol_prints_version_devices_compiler_cache(session_cache_dir):
    import sol as sol_package

    proc = subprocess.run([sys.executable, "-m", "sol"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SOL_CACHE_DIR": session_cache_dir})
    out = proc.stdout + proc.stderr
    print(out)
    assert proc.returncode == 0, out
    version = getattr(sol_package, "__version__", None)
    assert version, "sol.__version__ is missing"
    assert version in out, f"version {version} not printed"
    assert "x86" in out, "the x86 device is not listed"
    assert re.search(r"backend", out, re.IGNORECASE), "no backends listed"
    assert re.search(r"g\+\+|c\+\+|clang", out), "no compiler named"
    assert session_cache_dir in out or os.path.realpath(session_cache_dir) in out, "cache folder not printed"


def test_sol_log_debug_prints_passes_and_sources(tmp_path):
    proc = run_child("check", tmp_path / "cache", {"SOL_LOG": "debug"})
    assert_correct(result_of(proc))
    err = proc.stderr
    for name in ("canonicalize", "fold", "fuse"):
        assert name in err.lower(), f"pass `{name}` not in the SOL_LOG=debug output:\n{err[-4000:]}"
    paths = [p for p in paths_in(err) if p.endswith(SOURCE_SUFFIXES)]
    assert any(os.path.isfile(p) for p in paths), (
        f"no existing generated source path in the SOL_LOG=debug output: {paths[:10]}")


def test_cache_is_reused_by_a_second_process(tmp_path):
    cache = tmp_path / "cache"
    first = run_child("check", cache)
    assert_correct(result_of(first))
    before = cache_files(cache)
    assert shared_objects(cache), f"no .so files in the cache after a compile: {sorted(before)}"
    second = run_child("check", cache)
    assert_correct(result_of(second))
    after = cache_files(cache)
    ignore = lambda files: {k: v for k, v in files.items() if not k.endswith(".lock")}  # noqa: E731
    assert ignore(after) == ignore(before), (
        "the second process changed the cache: "
        f"new {sorted(set(after) - set(before))}, changed "
        f"{sorted(k for k in before if k in after and before[k] != after[k])}")
    # quiet by default: no pass dumps without SOL_LOG
    assert "canonicalize" not in second.stderr.lower(), second.stderr[-2000:]


def test_layout_choice_is_timed_once_then_read_from_the_cache(tmp_path):
    """The child's CNN lowers differently in NHWC and in channel blocks; with SOL_LAYOUT_TIMING_MS=0
    even its short calls are timed in both, once: a second process reads the choice."""
    cache = tmp_path / "cache"
    env = {"SOL_LAYOUT_TIMING_MS": "0"}
    first = run_child("check", cache, env)
    assert_correct(result_of(first))
    assert "layouts timed" in first.stderr, first.stderr[-3000:]
    assert list(cache.glob("*.layout")), f"no cached layout choice: {sorted(cache_files(cache))}"
    second = run_child("check", cache, env)
    assert_correct(result_of(second))
    assert "layouts timed" not in second.stderr and "compiling" not in second.stderr, second.stderr[-3000:]


def test_two_processes_fill_one_cache_at_once(tmp_path):
    """Atomic writes: two processes compiling the same kernels into one new folder."""
    cache = tmp_path / "cache"
    env = {**os.environ, "SOL_CACHE_DIR": str(cache)}
    env.pop("SOL_LOG", None)
    child = str(Path(__file__).with_name("_child.py"))
    procs = [subprocess.Popen([sys.executable, child, "check"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert_correct(result_of(subprocess.CompletedProcess(p.args, p.returncode, out, err)))
    leftovers = [k for k in cache_files(cache) if re.search(r"\.(tmp|part)\b|~$", k)]
    assert not leftovers, f"temporary files left in the cache: {leftovers}"


def test_cache_clear_empties_the_folder(tmp_path):
    cache = tmp_path / "cache"
    result = result_of(run_child("clear", cache))
    assert_correct(result)
    assert result["cleared"] > 0, f"sol.cache.clear() removed {result['cleared']} files"
    left = [f for f in result["files_after_clear"] if f.endswith(".so")]
    assert not left, f"shared objects left after sol.cache.clear(): {left}"
    assert shared_objects(cache), "optimizing after clear() did not fill the cache again"


@pytest.fixture(scope="module")
def populated_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("template") / "cache"
    assert_correct(result_of(run_child("check", cache)))
    assert shared_objects(cache), f"no .so files in the cache: {sorted(cache_files(cache))}"
    return cache


def corrupt(path, mode):
    data = path.read_bytes()
    if mode == "empty":
        new = b""
    elif mode == "truncated-half":
        new = data[: len(data) // 2]
    elif mode == "garbage":
        new = bytes(random.Random(0).getrandbits(8) for _ in range(len(data)))
    else:  # "flipped-bytes": a valid ELF header, same size, damaged inside
        body = bytearray(data)
        rng = random.Random(1)
        for i in rng.sample(range(len(body) // 3, len(body)), k=min(64, len(body) // 3)):
            body[i] ^= 0xFF
        new = bytes(body)
    path.write_bytes(new)
    return new


@pytest.mark.parametrize("mode", ["empty", "truncated-half", "garbage", "flipped-bytes"])
def test_corrupt_cache_entry_is_rebuilt(populated_cache, tmp_path, mode):
    cache = tmp_path / "cache"
    shutil.copytree(populated_cache, cache)
    damaged = {p.resolve(): corrupt(p, mode) for p in shared_objects(cache)}
    proc = run_child("check", cache)
    assert proc.returncode >= 0, f"the child died from signal {-proc.returncode}: {proc.stderr[-3000:]}"
    result = result_of(proc)
    assert_correct(result)
    loaded = [Path(p).resolve() for p in result["libraries"]]
    assert loaded and all(p in damaged for p in loaded), f"the child loaded {loaded}, not the damaged {list(damaged)}"
    for path in loaded:
        good = path.read_bytes()
        assert good != damaged[path], f"{path.name} is still the corrupted file (loaded, not rebuilt?)"
        assert good[:4] == b"\x7fELF", f"{path.name} is not a shared object after the rebuild"


def unwritable_cache_dirs(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = {"a-file": a_file, "below-a-file": a_file / "cache"}
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o500)
        cases["read-only-folder"] = ro / "cache"
    return cases


@pytest.mark.parametrize("case", ["a-file", "below-a-file", "read-only-folder"])
def test_unwritable_cache_dir_warns_and_works(tmp_path, case):
    cases = unwritable_cache_dirs(tmp_path)
    if case not in cases:
        pytest.skip("running as root: a read-only folder is still writable")
    proc = run_child("check", cases[case])
    assert_correct(result_of(proc))
    assert "warn" in proc.stderr.lower(), f"no warning on stderr:\n{proc.stderr[-3000:]}"
    assert (tmp_path / "a-file").read_text() == "not a folder", "SOL overwrote a file given as SOL_CACHE_DIR"


def test_missing_compiler_is_a_clear_error(tmp_path):
    proc = run_child("check", tmp_path / "cache", {"CXX": "/nonexistent/c++"})
    print(proc.stderr[-3000:])
    assert proc.returncode == 1, f"expected a Python exception (exit 1), got {proc.returncode}"
    assert re.search(r"^\S*CompileError\b", proc.stderr, re.MULTILINE), "not a sol.CompileError"
    assert "/nonexistent/c++" in proc.stderr, "the missing compiler is not named"


FAKE_CXX = """#!/bin/sh
# Fails every compile of a source file; everything else (version queries) goes to g++.
for arg in "$@"; do
  case "$arg" in
    *.cpp|*.cc|*.cxx|*.c)
      echo "fake-cxx: error: simulated failure compiling $arg" >&2
      exit 1;;
  esac
done
exec g++ "$@"
"""


def test_compiler_error_names_compiler_and_log(tmp_path):
    fake = tmp_path / "fake-cxx"
    fake.write_text(FAKE_CXX)
    fake.chmod(0o755)
    proc = run_child("check", tmp_path / "cache", {"CXX": str(fake)})
    print(proc.stderr[-3000:])
    assert proc.returncode == 1, f"expected a Python exception (exit 1), got {proc.returncode}"
    assert re.search(r"^\S*CompileError\b", proc.stderr, re.MULTILINE), "not a sol.CompileError"
    assert str(fake) in proc.stderr, "the compiler is not named"
    logs = [p for p in paths_in(proc.stderr) if os.path.isfile(p) and p != str(fake)]
    assert any("simulated failure" in Path(p).read_text(errors="replace") for p in logs), (
        f"no log file with the compiler's output is named; paths in the message: {logs}")


def test_compile_error_class_is_public():
    assert issubclass(sol.CompileError, Exception)


WRAPPED_CXX = """#!/bin/sh
# g++ under another name and version: the cache key must change with the compiler.
for arg in "$@"; do
  if [ "$arg" = "--version" ] || [ "$arg" = "-dumpversion" ]; then
    echo "wrapped-g++ (SOL cache-key test) 99.0"
    exit 0
  fi
done
exec g++ "$@"
"""


def test_cache_key_includes_the_compiler(populated_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(populated_cache, cache)
    before = set(map(str, shared_objects(cache)))
    wrapper = tmp_path / "wrapped-g++"
    wrapper.write_text(WRAPPED_CXX)
    wrapper.chmod(0o755)
    assert_correct(result_of(run_child("check", cache, {"CXX": str(wrapper)})))
    new = set(map(str, shared_objects(cache))) - before
    assert new, "another compiler reused the artifacts of the first: the cache key ignores the compiler"
