"""Bitmap fonts: the committed modules are well formed and cover what the
screens draw; the generator packs glyphs exactly as FreeType rasterises them
(oracle: Pillow's own 1-bit glyph masks)."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import ImageFont

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.dev import mkfont  # noqa: E402

RUNTIMES = ()  # CPython only: runs no MicroPython

FONTS = {n: mkfont.load_module(ROOT / "firmware" / "display" / f"{n}.py") for n in ("font_big", "font_mid")}


def ink(rows) -> set[tuple[int, int]]:
    pts = {(x, y) for y, row in enumerate(rows) for x, v in enumerate(row) if v}
    if not pts:
        return pts
    x0, y0 = min(x for x, _ in pts), min(y for _, y in pts)
    return {(x - x0, y - y0) for x, y in pts}


def test_committed_fonts_are_well_formed():
    for name, f in FONTS.items():
        n = len(f.CHARS)
        assert len(f.WIDTHS) == n and len(f.OFFSETS) == 2 * n, name
        off = 0
        for i in range(n):
            assert int.from_bytes(f.OFFSETS[2 * i : 2 * i + 2], "little") == off, (name, f.CHARS[i])
            off += (f.WIDTHS[i] + 7) // 8 * f.HEIGHT
        assert off == len(f.BITMAP), name
        for c in f.CHARS:
            assert (c == " ") == (not ink(mkfont.glyph(f, c))), (name, c)
        src = (ROOT / "firmware" / "display" / f"{name}.py").read_text()
        assert "Bitstream" in src and "DejaVu changes are in public domain" in src  # licence carried along


def test_fonts_cover_what_the_screens_draw():
    big, mid = FONTS["font_big"], FONTS["font_mid"]
    assert set("0123456789.-kMWh\u2014") <= set(big.CHARS)
    assert set(mid.CHARS) >= {chr(c) for c in range(32, 127)} | set("\u2014\u00a3\u20ac")
    assert big.HEIGHT > 2 * 8 and mid.HEIGHT > 8  # larger than framebuf's 8x8


def test_generator_packs_freetype_glyphs_exactly():
    size = 22
    font = ImageFont.load_default(size=size)
    chars = "0123456789kW%"
    src = mkfont.module_source("font_t", font, "pillow default", size, chars, 1, "test only")
    ns: dict = {}
    exec(compile(src, "font_t.py", "exec"), ns)

    class F:
        pass

    f = F()
    f.__dict__.update({k: ns[k] for k in ("HEIGHT", "CHARS", "WIDTHS", "OFFSETS", "BITMAP")})
    for c in chars:
        mask = font.getmask(c, mode="1")
        w, h = mask.size
        want = [[1 if mask.getpixel((x, y)) else 0 for x in range(w)] for y in range(h)]
        assert ink(mkfont.glyph(f, c)) == ink(want), c
