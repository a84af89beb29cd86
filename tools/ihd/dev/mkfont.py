"""Generate the display's bitmap fonts (firmware/display/font_*.py).

The firmware draws its main figures with 1-bit bitmap fonts rasterised here,
once, from the DejaVu fonts shipped with Debian (fonts-dejavu-core; Bitstream
Vera licence plus public-domain DejaVu changes, reproduced in each generated
module). The output is a plain MicroPython module of bytes objects, so that a
frozen build keeps the glyphs in flash and a normal import costs only their
size in RAM.

Glyph format (read by firmware/display/text.py): every glyph is HEIGHT rows of
MONO_HLSB bits (1 = ink), each row padded to whole bytes; WIDTHS[i] is the
advance of CHARS[i] in pixels; OFFSETS holds the byte offset of each glyph in
BITMAP as little-endian uint16.

Sub-commands:
  build   one font from any TTF: --ttf, --size, --chars, --name, --out
  all     regenerate the committed fonts (font_big.py, font_mid.py)
  show    print a font module's glyphs as text art, to eyeball them
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[3]
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
LICENCE = Path("/usr/share/doc/fonts-dejavu-core/copyright")

# The committed fonts: (module name, ttf file, pixel size, characters, spacing).
# big: live-screen figures (demand, energy, cost), no descenders needed.
# mid: labels, states and the fault sentence; printable ASCII plus symbols.
ASCII = "".join(chr(c) for c in range(32, 127))
FONTS = (
    ("font_big", "DejaVuSans-Bold.ttf", 34, " 0123456789.-+kMWh\u2014\u00a3\u20ac", 2),
    ("font_mid", "DejaVuSansCondensed-Bold.ttf", 13, ASCII + "\u2014\u00a3\u20ac\u00b0\u2191\u2193", 1),
)


def rasterise(font: ImageFont.FreeTypeFont, size: int, chars: str, spacing: int):
    """Return (height, baseline, [(char, width, rows of 0/1)])."""
    missing = [c for c in chars if c != " " and font.getmask(c).getbbox() is None]
    if missing:
        raise SystemExit(f"mkfont: the font has no glyph for {missing!r}")
    ascent, _ = font.getmetrics()
    # The line box is the union of the ink of all glyphs: no wasted rows.
    top, bottom = 10**6, -(10**6)
    for c in chars:
        if c == " ":
            continue
        _, t, _, b = font.getbbox(c)
        top, bottom = min(top, t), max(bottom, b)
    height = bottom - top
    glyphs = []
    for c in chars:
        adv = max(1, round(font.getlength(c)))
        if c == " ":
            adv = max(adv, size // 4)
        # Tight advance for bold digits keeps figures compact but legible.
        left = font.getbbox(c)[0] if c != " " else 0
        left = min(left, 0)
        img = Image.new("1", (adv + 4 - left, height), 0)
        draw = ImageDraw.Draw(img)
        draw.fontmode = "1"  # no anti-aliasing: the panel is 1-bit
        draw.text((-left, -top), c, font=font, fill=1)
        px = img.load()
        # Crop the cell to the ink extent plus `spacing` on the right.
        cols = [x for x in range(img.width) if any(px[x, y] for y in range(height))]
        width = (max(cols) + 1 + spacing) if cols else adv
        width = max(width, adv if c == " " else 1)
        rows = [[px[x, y] if x < img.width else 0 for x in range(width)] for y in range(height)]
        glyphs.append((c, width, rows))
    return height, ascent - top, glyphs


def pack(rows, width):
    out = bytearray()
    for row in rows:
        for x0 in range(0, width, 8):
            b = 0
            for i in range(8):
                if x0 + i < width and row[x0 + i]:
                    b |= 0x80 >> i
            out.append(b)
    return bytes(out)


def bytes_literal(name: str, data: bytes, per_line: int = 24) -> str:
    # Wrapped hex literal: stays within the line-length limit, diffs well.
    if len(data) <= per_line:
        return f'{name} = b"' + "".join(f"\\x{b:02x}" for b in data) + '"'
    lines = [f"{name} = ("]
    for i in range(0, len(data), per_line):
        lines.append('    b"' + "".join(f"\\x{b:02x}" for b in data[i : i + per_line]) + '"')
    lines.append(")")
    return "\n".join(lines)


def str_literal(name: str, text: str, per_line: int = 48) -> str:
    if len(text) <= per_line:
        return f"{name} = {ascii_repr(text)}"
    lines = [f"{name} = ("]
    for i in range(0, len(text), per_line):
        lines.append("    " + ascii_repr(text[i : i + per_line]))
    lines.append(")")
    return "\n".join(lines)


def ascii_repr(text: str) -> str:
    # Double-quoted, ASCII-only (\\u escapes) literal, valid in both Pythons.
    out = []
    for c in text:
        if c in '\\"':
            out.append("\\" + c)
        elif 32 <= ord(c) < 127:
            out.append(c)
        else:
            out.append(f"\\u{ord(c):04x}")
    return '"' + "".join(out) + '"'


def licence_text() -> str:
    if not LICENCE.exists():
        raise SystemExit(f"mkfont: licence file {LICENCE} not found (install fonts-dejavu-core)")
    return LICENCE.read_text()


def module_source(
    name: str, font: ImageFont.FreeTypeFont, origin: str, size: int, chars: str, spacing: int, licence: str
) -> str:
    height, baseline, glyphs = rasterise(font, size, chars, spacing)
    bitmap = bytearray()
    offsets = bytearray()
    widths = bytearray()
    for _, w, rows in glyphs:
        if w > 255 or len(bitmap) > 0xFFFF:
            raise SystemExit(f"mkfont: {name} too large for the uint8/uint16 format")
        offsets += len(bitmap).to_bytes(2, "little")
        widths.append(w)
        bitmap += pack(rows, w)
    lic = "\n".join(("# " + line).rstrip() for line in licence.splitlines())
    return (
        f"# {name}: 1-bit bitmap font for the e-ink screens, generated by tools/ihd/dev/mkfont.py\n"
        f"# from {origin} at {size} px. Do not edit: run `python -m ihd.dev.mkfont all`.\n"
        "# Format: see tools/ihd/dev/mkfont.py and firmware/display/text.py.\n"
        "#\n"
        "# Glyphs rendered from the DejaVu fonts; their licence follows.\n"
        f"{lic}\n"
        f"HEIGHT = {height}\n"
        f"BASELINE = {baseline}\n"
        f"{str_literal('CHARS', chars)}\n"
        f"{bytes_literal('WIDTHS', bytes(widths))}\n"
        f"{bytes_literal('OFFSETS', bytes(offsets))}\n"
        f"{bytes_literal('BITMAP', bytes(bitmap))}\n"
    )


def write_font(name, ttf: Path, size, chars, spacing, out: Path) -> None:
    font = ImageFont.truetype(str(ttf), size)
    src = module_source(name, font, ttf.name, size, chars, spacing, licence_text())
    out.write_text(src, encoding="utf-8")
    print(f"mkfont: wrote {out} ({len(chars)} glyphs, {out.stat().st_size} bytes of source)")


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def glyph(f, c: str) -> list[list[int]]:
    """Rows of 0/1 of character c in a generated font module `f`."""
    i = f.CHARS.find(c)
    if i < 0:
        raise KeyError(c)
    w = f.WIDTHS[i]
    off = int.from_bytes(f.OFFSETS[2 * i : 2 * i + 2], "little")
    stride = (w + 7) // 8
    rows = []
    for y in range(f.HEIGHT):
        row = f.BITMAP[off + y * stride : off + (y + 1) * stride]
        rows.append([1 if row[x // 8] & (0x80 >> (x % 8)) else 0 for x in range(w)])
    return rows


def show(path: Path, text: str | None) -> None:
    f = load_module(path)
    for c in text or f.CHARS:
        try:
            rows = glyph(f, c)
        except KeyError:
            raise SystemExit(f"mkfont: {c!r} not in {path.name}")
        print(f"--- {c!r} width {len(rows[0])}")
        for row in rows:
            print("".join("#" if v else "." for v in row))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="rasterise one font")
    b.add_argument("--ttf", type=Path, required=True)
    b.add_argument("--size", type=int, required=True)
    b.add_argument("--chars", default=ASCII)
    b.add_argument("--spacing", type=int, default=1)
    b.add_argument("--name", required=True)
    b.add_argument("--out", type=Path, required=True)
    a = sub.add_parser("all", help="regenerate the committed fonts")
    a.add_argument("--out-dir", type=Path, default=ROOT / "firmware" / "display")
    s = sub.add_parser("show", help="print glyphs as text art")
    s.add_argument("module", type=Path)
    s.add_argument("--text")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        if not args.ttf.exists():
            raise SystemExit(f"mkfont: {args.ttf} not found")
        write_font(args.name, args.ttf, args.size, args.chars, args.spacing, args.out)
    elif args.cmd == "all":
        for name, ttf, size, chars, spacing in FONTS:
            path = DEJAVU / ttf
            if not path.exists():
                raise SystemExit(f"mkfont: {path} not found (install fonts-dejavu-core)")
            write_font(name, path, size, chars, spacing, args.out_dir / f"{name}.py")
    else:
        show(args.module, args.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
