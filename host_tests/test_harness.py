"""The harness itself: MicroPython failures must fail pytest, visibly."""

import textwrap

import pytest

import mpy as mpymod


def test_snippet_output_comes_back(mpy):
    r = mpy.run("import sys\nprint(sys.implementation.name, 6 * 7)")
    assert r.stdout.split() == ["micropython", "42"]


def test_failing_assertion_raises_with_micropython_traceback(mpy):
    code = "def f(x):\n    assert x == 2, 'x was %d' % x\n\nf(3)\n"
    with pytest.raises(mpymod.MicroPythonError) as ei:
        mpy.run(code)
    msg = str(ei.value)
    assert "Traceback (most recent call last)" in msg
    assert "AssertionError: x was 3" in msg
    assert "line 2, in f" in msg


def test_heap_cap_raises_memoryerror(mpy):
    # 64 KB fits in the default heap but not in a 32 KB one.
    mpy.run("b = bytearray(64 * 1024)")
    with pytest.raises(mpymod.MicroPythonError) as ei:
        mpy.run("b = bytearray(64 * 1024)", heap="32k")
    assert "MemoryError" in str(ei.value)


def test_code_runs_in_micropython_not_cpython(mpy):
    # const() and micropython module exist only in MicroPython.
    r = mpy.run("from micropython import const\nX = const(3)\nimport micropython\nprint(X)")
    assert r.stdout.strip() == "3"


MPT_FAILING = """
HEAP = "48k"

def test_passes():
    assert sum(range(4)) == 6

def test_fails():
    a = [1, 2]
    assert a[0] == 9, "expected 9"

def test_out_of_memory():
    b = bytearray(100 * 1024)
"""


def test_mpt_files_are_collected_and_failures_reported(pytester, runtime, monkeypatch):
    # Run a nested pytest over an mpt_ file through this very plugin, on this
    # test's runtime only (the nested session would run every built one).
    monkeypatch.setenv("IHD_RUNTIMES", runtime)
    pytester.makeconftest(
        f"import sys\nsys.path.insert(0, {str(mpymod.ROOT / 'host_tests')!r})\npytest_plugins = ['mpy_plugin']\n"
    )
    pytester.makefile(".py", mpt_demo=textwrap.dedent(MPT_FAILING))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    assert "AssertionError: expected 9" in out
    assert "MemoryError" in out
    assert "heap=48k" in out or "mpt_demo.py" in out
    assert f"[{runtime}]" in out  # each item names its runtime
