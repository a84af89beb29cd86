"""docs/faults.md and firmware/faults.py list the same faults, in the same
(priority) order, with the same numbers and the same on-screen sentence, and
every row tells support what it means and what to do."""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIMES = ()  # CPython only: runs no MicroPython

ROOT = Path(__file__).resolve().parents[2]


def firmware_table() -> list[tuple[int, str, str]]:
    # firmware/faults.py is MicroPython (const()); read it without importing.
    tree = ast.parse((ROOT / "firmware" / "faults.py").read_text())
    consts: dict[str, int] = {}
    table = None
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        name = getattr(node.targets[0], "id", None)
        v = node.value
        if isinstance(v, ast.Call) and getattr(v.func, "id", None) == "const":
            consts[name] = ast.literal_eval(v.args[0])
        elif name == "TABLE":
            table = v
    assert table is not None, "TABLE not found"
    rows = []
    for row in table.elts:
        num, code, sentence = row.elts
        n = consts[num.id] if isinstance(num, ast.Name) else ast.literal_eval(num)
        rows.append((n, ast.literal_eval(code), ast.literal_eval(sentence)))
    return rows


def doc_table() -> list[list[str]]:
    rows = []
    for line in (ROOT / "docs" / "faults.md").read_text().splitlines():
        if not line.startswith("|") or line.startswith("|--") or line.startswith("| Code"):
            continue
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_docs_and_firmware_agree():
    fw = firmware_table()
    doc = doc_table()
    assert [r[0] for r in doc] == [code for _, code, _ in fw], "codes or their order differ"
    for (num, code, sentence), row in zip(fw, doc, strict=True):
        assert len(row) == 6, f"{code}: expected 6 columns, got {len(row)}"
        assert int(row[1]) == num, f"{code}: number {row[1]} in docs, {num} in firmware"
        assert row[2] == sentence, f"{code}: sentence differs:\n docs: {row[2]}\n fw:   {sentence}"
        assert len(row[3]) > 20 and len(row[4]) > 20, f"{code}: meaning/action missing"


def test_codes_and_numbers_are_unique():
    fw = firmware_table()
    assert len({n for n, _, _ in fw}) == len(fw)
    assert len({c for _, c, _ in fw}) == len(fw)
    assert len({s for _, _, s in fw}) == len(fw)
