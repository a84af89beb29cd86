"""Every statement of firmware/hal/esp32.py is executed by some scenario.

A copy of the hal package goes ahead of `.frozen` on MICROPYPATH, its
esp32.py rewritten (CPython's ast) with a hit marker before each statement;
each marker appends its source line to $IHD_COV the first time it runs. All
scenarios of esp32scenarios.py then run on mp32 against that copy, and the
test fails listing the lines of hal/esp32.py that no scenario reached.
"""

import ast
import shutil

import esp32scenarios as sc

RUNTIMES = ("mp32",)
HAL = sc.ROOT / "firmware" / "hal"

_PRELUDE = """
import os as _cov_os
_cov_seen = set()
_cov_file = _cov_os.getenv("IHD_COV")


def _cov(n):
    if n not in _cov_seen:
        _cov_seen.add(n)
        with open(_cov_file, "a") as f:
            f.write("%d\\n" % n)
"""


def _marked(body, lines):
    # A marker before each statement of `body`, recursively into nested bodies.
    out = []
    for st in body:
        lines.add(st.lineno)
        for field in ("body", "orelse", "finalbody", "handlers"):
            sub = getattr(st, field, None)
            if isinstance(sub, list) and sub and isinstance(sub[0], ast.stmt):
                setattr(st, field, _marked(sub, lines))
            elif field == "handlers" and sub:
                for h in sub:
                    h.body = _marked(h.body, lines)
        out.append(ast.Expr(ast.Call(ast.Name("_cov", ast.Load()), [ast.Constant(st.lineno)], [])))
        out.append(st)
    return out


def instrument(src: str):
    """-> (instrumented source, statement lines of `src`)."""
    tree = ast.parse(src)
    lines = set()
    tree.body = ast.parse(_PRELUDE).body + _marked(tree.body, lines)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree), lines


def test_every_statement_of_hal_esp32_runs(tmp_path):
    lib = tmp_path / "covlib"
    shutil.copytree(HAL, lib / "hal", ignore=shutil.ignore_patterns("__pycache__"))
    code, lines = instrument((HAL / "esp32.py").read_text())
    (lib / "hal" / "esp32.py").write_text(code)
    hits = tmp_path / "hits"
    hits.touch()
    for i, scenario in enumerate(sc.SCENARIOS):
        state = tmp_path / f"s{i}" / "state"
        state.mkdir(parents=True)
        scenario(sc.Device(state, first_path=lib, extra_env={"IHD_COV": hits}))
    hit = {int(x) for x in hits.read_text().split()}
    src = (HAL / "esp32.py").read_text().split("\n")
    missed = sorted(lines - hit)
    assert not missed, "hal/esp32.py lines never executed:\n" + "\n".join(f"{n}: {src[n - 1]}" for n in missed)
    assert len(lines) > 80  # the instrumentation found the statements
