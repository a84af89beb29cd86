"""Golden images: every screen in every state, on every panel, as the
emulated glass shows it after the firmware's SPI stream (ihd panel).

Reference images are PBM files in host_tests/display/golden/<panel>/.
Regenerate them deliberately with `UPDATE_GOLDEN=1 pytest host_tests/display`
and look at the PNGs from `make previews` before committing.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.panel import emulator as emu  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
GOLDEN_PANELS = ("ssd1680_296x128", "ssd1680_250x122")


def fault_codes() -> list[str]:
    """Short codes of firmware/faults.py's TABLE, read without importing it."""
    tree = ast.parse((ROOT / "firmware" / "faults.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "TABLE":
            return [row.elts[1].value for row in node.value.elts]
    raise AssertionError("TABLE not found in firmware/faults.py")


_RENDERED: dict[str, dict] = {}


@pytest.fixture
def rendered(runtime):
    # Rendered once per runtime (ihd panel runs IHD_MICROPYTHON, which
    # the per-test runtime fixture sets: a module fixture would render once,
    # on whichever runtime came first, and serve both).
    if runtime not in _RENDERED:
        _RENDERED[runtime] = {
            panel: {"full": emu.render_scenes(panel), "partial": emu.render_scenes(panel, partial=True)}
            for panel in emu.PANELS
        }
    return _RENDERED[runtime]


def _frames(e: emu.Emulator) -> dict[str, Image.Image]:
    names = [n for n, _ in e.frames]
    assert len(names) == len(set(names)), "duplicate scene names"
    return dict(e.frames)


@pytest.mark.parametrize("panel", GOLDEN_PANELS)
def test_every_scene_matches_golden(rendered, panel):
    e = rendered[panel]["full"]
    assert e.ctl.errors == []
    frames = _frames(e)
    d = GOLDEN / panel
    if UPDATE:
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("*.pbm"):
            old.unlink()
        for name, img in frames.items():
            img.save(d / f"{name}.pbm")
    on_disk = {p.stem for p in d.glob("*.pbm")}
    assert on_disk == set(frames), f"golden set differs: missing {set(frames) - on_disk}, stale {on_disk - set(frames)}"
    bad = []
    for name, img in frames.items():
        ref = Image.open(d / f"{name}.pbm").convert("1")
        if ref.size != img.size or ref.tobytes() != img.tobytes():
            bad.append(name)
    assert not bad, f"{panel}: images differ from golden: {bad} (UPDATE_GOLDEN=1 to accept)"


def test_every_fault_code_has_a_scene_and_its_own_image(rendered):
    codes = fault_codes()
    assert len(codes) == len(set(codes))
    for panel in emu.PANELS:
        frames = _frames(rendered[panel]["full"])
        imgs = {}
        for code in codes:
            name = f"diag_fault_{code}"
            assert name in frames, f"no scene for fault {code}"
            imgs[code] = frames[name].tobytes()
        # A support agent must tell every failure mode apart from the screen.
        assert len(set(imgs.values())) == len(codes)
        assert frames["diag_ok"].tobytes() not in imgs.values()


def test_uc8151_shows_the_same_pixels_as_ssd1680(rendered):
    # Two controllers, two command sets, one 296x128 layout: same glass.
    a = _frames(rendered["ssd1680_296x128"]["full"])
    b = _frames(rendered["uc8151_296x128"]["full"])
    assert rendered["uc8151_296x128"]["full"].ctl.errors == []
    assert a.keys() == b.keys()
    assert [n for n in a if a[n].tobytes() != b[n].tobytes()] == []


@pytest.mark.parametrize("panel", list(emu.PANELS))
def test_partial_refreshes_reach_the_same_image(rendered, panel):
    # Differential updates drive only changed pixels; a wrong "old image"
    # in the controller would leave stale pixels and fail this.
    full, part = rendered[panel]["full"], rendered[panel]["partial"]
    assert part.ctl.errors == []
    assert (part.ctl.full, part.ctl.partial) == (1, len(part.frames) - 1)
    assert (full.ctl.full, full.ctl.partial) == (len(full.frames), 0)
    a, b = _frames(full), _frames(part)
    assert [n for n in a if a[n].tobytes() != b[n].tobytes()] == []


def test_images_are_not_blank_and_fit_the_panel(rendered):
    for panel, (_, gates, sources) in emu.PANELS.items():
        for name, img in rendered[panel]["full"].frames:
            assert img.size == (gates, sources)
            hist = img.convert("L").histogram()
            black, white = hist[0], hist[255]
            assert black > 200 and white > gates * sources // 2, f"{panel}/{name}: {black} black px"
