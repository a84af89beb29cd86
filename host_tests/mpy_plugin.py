"""pytest plugin: MicroPython test files and the `mpy` fixture.

* Files named `mpt_*.py` are MicroPython test modules. Each `def test_*()`
  in them becomes a pytest item that runs, alone, in a fresh MicroPython
  Unix-port process (host_tests/mplib/mprun.py). A module-level
  `HEAP = "64k"` caps the heap for all its tests, `HEAPS = {"test_x": "32k"}`
  for one; the default is mpy.DEFAULT_HEAP. Each test gets a fresh state
  directory (IHD_STATE) for the emulated flash and reset cause.
* The `mpy` fixture runs snippets on MicroPython from CPython-side tests
  (e.g. to compare firmware output with a third-party oracle).
* Two runtimes, one suite: every test runs once per runtime of
  mpy.suite_runtimes() (mp32, our 32-bit frozen build, and the pip wheel),
  with IHD_MICROPYTHON set for the test, so snippets, tools and the
  simulator it starts all use that runtime. Ids end in [mp32] / [wheel]. A
  module that runs no MicroPython sets `RUNTIMES = ()`; one that must run on
  fewer sets e.g. `RUNTIMES = ("mp32",)` and says why.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mpy as _mpy  # noqa: E402


def _literal(tree: ast.Module, name: str, default):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    return default


class MicroPythonFile(pytest.File):
    def collect(self):
        tree = ast.parse(self.path.read_text(), str(self.path))
        heap = _literal(tree, "HEAP", _mpy.DEFAULT_HEAP)
        heaps = _literal(tree, "HEAPS", {})
        timeout = _literal(tree, "TIMEOUT", 300)
        wanted = _literal(tree, "RUNTIMES", None) or _mpy.suite_runtimes()
        runtimes = [rt for rt in wanted if rt in _mpy.suite_runtimes()]
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                for rt in runtimes:
                    yield MicroPythonItem.from_parent(
                        self,
                        name=f"{node.name}[{rt}]",
                        func=node.name,
                        runtime=rt,
                        heap=heaps.get(node.name, heap),
                        timeout=timeout,
                    )


class MicroPythonItem(pytest.Item):
    def __init__(self, *, func, runtime, heap, timeout, **kw):
        super().__init__(**kw)
        self.func = func
        self.runtime = runtime
        self.heap = heap
        self.timeout = timeout

    def runtest(self):
        tmp = self.config._tmp_path_factory.mktemp(self.func[:40])
        old = os.environ.get("IHD_MICROPYTHON")
        os.environ["IHD_MICROPYTHON"] = self.runtime
        try:
            _mpy.run(
                path=_mpy.MPLIB / "mprun.py",
                args=(self.path, self.func),
                heap=self.heap,
                state_dir=tmp / "state",
                timeout=self.timeout,
            )
        finally:
            if old is None:
                os.environ.pop("IHD_MICROPYTHON", None)
            else:
                os.environ["IHD_MICROPYTHON"] = old

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, _mpy.MicroPythonError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name} [micropython {self.runtime} heap={self.heap}]"


def _is_mpt(path: Path) -> bool:
    return path.suffix == ".py" and path.name.startswith("mpt_")


def pytest_collect_file(parent, file_path: Path):
    # A file named on the command line is also offered to pytest's Python
    # collector, which asks pytest_pycollect_makemodule below: leave it there.
    if _is_mpt(file_path) and not parent.session.isinitpath(file_path):
        return MicroPythonFile.from_parent(parent, path=file_path)
    return None


def pytest_pycollect_makemodule(module_path: Path, parent):
    # Never let CPython import a MicroPython test module.
    if _is_mpt(module_path):
        return MicroPythonFile.from_parent(parent, path=module_path)
    return None


class MicroPythonRunner:
    """Bound to one test: its state dir persists across run() calls (reboots)."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir

    def run(self, code=None, **kw):
        kw.setdefault("state_dir", self.state_dir)
        return _mpy.run(code, **kw)


def pytest_sessionstart(session):
    # mp32 runs the firmware frozen into its binary: refreeze (a few seconds)
    # when a firmware file changed since, or the tests would run old code.
    if "mp32" in _mpy.suite_runtimes():
        from ihd.mp32 import build as mp32_build

        if mp32_build.stale():
            if mp32_build.main([]) != 0:
                raise pytest.UsageError("mp32: the firmware changed and rebuilding build/mp32/micropython failed")


def pytest_generate_tests(metafunc):
    # Every CPython-side test runs once per runtime unless its module says
    # otherwise (RUNTIMES = () for tests that run no MicroPython at all).
    names = getattr(metafunc.module, "RUNTIMES", None)
    mark = metafunc.definition.get_closest_marker("runtimes")
    if mark is not None:
        names = mark.args
    if names is None:
        names = _mpy.suite_runtimes()
    if names == () or "runtime" not in metafunc.fixturenames:
        return  # CPython only
    have = [n for n in names if n in _mpy.suite_runtimes()]
    if have:
        metafunc.parametrize("runtime", have, indirect=True)
    else:
        # Restricted to runtimes this session does not have (IHD_RUNTIMES,
        # or mp32 not built): reported as skipped, never run on another one.
        why = f"needs runtime {'/'.join(names)}, not in this session ({', '.join(_mpy.suite_runtimes())})"
        metafunc.parametrize("runtime", [pytest.param(names[0], marks=pytest.mark.skip(reason=why))], indirect=True)


@pytest.fixture(autouse=True)
def runtime(request, monkeypatch):
    """The MicroPython runtime of this test (mp32 or wheel), exported as
    IHD_MICROPYTHON so everything the test starts uses it."""
    have = _mpy.suite_runtimes()
    name = getattr(request, "param", None) or os.environ.get("IHD_MICROPYTHON") or (have[0] if have else "wheel")
    monkeypatch.setenv("IHD_MICROPYTHON", name)
    return name


@pytest.fixture
def mpy(tmp_path) -> MicroPythonRunner:
    return MicroPythonRunner(tmp_path / "state")
