"""Read-only towards the meter, by construction (EZSP side; CPython, AST).

mpt_readonly.py shows on MicroPython that ezsp.Ezsp refuses every frame id
off its whitelist and every ZCL payload but Read Attributes. That only
matters if Ezsp's builders are the one way bytes reach the UART. This test
reads the source of every firmware/meter module that is not RAVEn's (those
are checked by meter_raven/test_raven_oracle.py) and pins the whole path:

  ezsp.Ezsp builder (whitelist in _begin)  ->  ez.tx  ->  ash.send
  ->  Ash._send_raw / Ash.reset (link layer)  ->  EzspLink._write  ->  UART

by glob, so a module split out later is checked without editing a list.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METER = ROOT / "firmware" / "meter"


def modules() -> dict[str, ast.Module]:
    names = sorted(p.name for p in METER.glob("*.py") if not p.name.startswith("raven"))
    assert {"ash.py", "ezsp.py", "ezsp_link.py", "ezsp_capture.py", "zcl.py"} <= set(names), names
    return {n: ast.parse((METER / n).read_text()) for n in names}


FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


def calls(mods, attr):
    # (module, innermost enclosing function or None, call source) for every
    # call of .<attr>(...), wherever it is.
    out = []

    def visit(name, node, fn):
        if isinstance(node, FUNCS):
            fn = node.name
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr:
            out.append((name, fn, ast.unparse(node)))
        for child in ast.iter_child_nodes(node):
            visit(name, child, fn)

    for name, tree in mods.items():
        visit(name, tree, None)
    return sorted(out, key=str)


def test_one_uart_write_and_it_is_the_ash_writer():
    mods = modules()
    assert calls(mods, "write") == [("ezsp_link.py", "_write", "self.uart.write(self._mv[:n])")]
    # EzspLink._write is only ever handed to ASH; the capture decoder's
    # writer writes nothing.
    refs = []
    for name, tree in mods.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("_write", "_nowrite") and name != "ash.py":
                refs.append((name, node.attr))
    assert sorted(refs) == [("ezsp_capture.py", "_nowrite"), ("ezsp_link.py", "_write")]
    ctors = calls(mods, "Ash")
    assert ctors == [
        ("ezsp_capture.py", "__init__", "ash.Ash(self._nowrite, self._frame, self._event)"),
        ("ezsp_link.py", "__init__", "ash.Ash(self._write, self._on_frame, self._on_event)"),
    ]
    nowrite = next(
        n for n in ast.walk(mods["ezsp_capture.py"]) if isinstance(n, ast.FunctionDef) and n.name == "_nowrite"
    )
    assert [type(s) for s in nowrite.body] == [ast.Pass]


def test_ash_writes_only_its_own_frames():
    # Inside ASH the writer sends only the stuffed output buffer: control
    # frames and DATA in _send_raw, CAN+RST in reset.
    assert calls({"ash.py": modules()["ash.py"]}, "_write") == [
        ("ash.py", "_send_raw", "self._write(self._out, m)"),
        ("ash.py", "reset", "self._write(self._out, m + 1)"),
    ]


def test_ash_carries_only_frames_ezsp_built():
    mods = modules()
    sends = [c for c in calls(mods, "send") if c[0] != "ash.py"]
    assert sends == [("ezsp_link.py", "_call", "self.ash.send(self.ez.tx, n)")]
    # Nothing but ezsp.py stores into a tx buffer or touches Ezsp's private
    # builders (which skip the whitelist).
    for name, tree in mods.items():
        if name == "ezsp.py":
            continue
        for node in ast.walk(tree):
            src = (name, ast.unparse(node))
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
                target = ast.unparse(node.value)
                assert target != "tx" and not target.endswith(".tx"), src
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("_begin", "_u16", "_u32", "_copy"), src
                assert node.attr != "tx" or src == ("ezsp_link.py", "self.ez.tx"), src


def test_every_ezsp_builder_passes_the_whitelist():
    # In ezsp.py every method that writes into tx either is a field helper
    # or starts its frame with _begin (the CMD_ALLOWED check).
    tree = modules()["ezsp.py"]
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Ezsp")
    helpers = {"_begin", "_u16", "_u32", "_copy"}
    builders = []
    for fn in cls.body:
        if not isinstance(fn, FUNCS) or fn.name in helpers:
            continue
        writes_tx = any(
            isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store) and ast.unparse(n.value) in ("tx", "self.tx")
            for n in ast.walk(fn)
        ) or any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in helpers
            for n in ast.walk(fn)
        )
        if writes_tx:
            begins = any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "_begin"
                for n in ast.walk(fn)
            )
            assert begins, fn.name
            builders.append(fn.name)
    assert "send_unicast" in builders and "cmd" in builders, builders
    # tx is only ever rebound in __init__ (a fresh buffer).
    for fn in ast.walk(tree):
        if isinstance(fn, FUNCS):
            for n in ast.walk(fn):
                if isinstance(n, ast.Attribute) and n.attr == "tx" and isinstance(n.ctx, ast.Store):
                    assert fn.name == "__init__", fn.name
