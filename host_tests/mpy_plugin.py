"""pytest plugin: MicroPython test files and the `mpy` fixture.

* Files named `mpt_*.py` are MicroPython test modules. Each `def test_*()`
  in them becomes a pytest item that runs, alone, in a fresh MicroPython
  Unix-port process (host_tests/mplib/mprun.py). A module-level
  `HEAP = "64k"` caps the heap for all its tests, `HEAPS = {"test_x": "32k"}`
  for one; the default is mpy.DEFAULT_HEAP. Each test gets a fresh state
  directory (IHD_STATE) for the emulated flash and reset cause.
* The `mpy` fixture runs snippets on MicroPython from CPython-side tests
  (e.g. to compare firmware output with a third-party oracle).
"""

from __future__ import annotations

import ast
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
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                yield MicroPythonItem.from_parent(
                    self, name=node.name, heap=heaps.get(node.name, heap), timeout=timeout
                )


class MicroPythonItem(pytest.Item):
    def __init__(self, *, heap, timeout, **kw):
        super().__init__(**kw)
        self.heap = heap
        self.timeout = timeout

    def runtest(self):
        tmp = self.config._tmp_path_factory.mktemp(self.name[:40])
        _mpy.run(
            path=_mpy.MPLIB / "mprun.py",
            args=(self.path, self.name),
            heap=self.heap,
            state_dir=tmp / "state",
            timeout=self.timeout,
        )

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, _mpy.MicroPythonError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name} [micropython heap={self.heap}]"


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


@pytest.fixture
def mpy(tmp_path) -> MicroPythonRunner:
    return MicroPythonRunner(tmp_path / "state")
