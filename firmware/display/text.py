# Text on a framebuf.FrameBuffer: the bitmap fonts made by tools/mkfont.py
# (display/font_*.py) and framebuf's built-in 8x8 font.
#
# A glyph is copied, row by row, into one scratch buffer per font that a
# FrameBuffer already wraps, and blitted with the paper colour transparent:
# no allocation per character (framebuf cannot wrap the font's read-only
# bytes directly). Colour 1 is ink, 0 is paper; white-on-black text goes
# through a two-entry palette.
import framebuf
import micropython

_scratch = {}  # font module -> (FrameBuffer, bytearray, stride)
_INVERT = bytearray(1)
_inv_fb = framebuf.FrameBuffer(_INVERT, 2, 1, framebuf.MONO_HLSB)
_inv_fb.pixel(0, 0, 1)  # source 0 (paper) -> 1, made transparent by key=1
_inv_fb.pixel(1, 0, 0)  # source 1 (ink) -> 0


def _cell(font):
    s = _scratch.get(font)
    if s is None:
        stride = (max(font.WIDTHS) + 7) // 8
        buf = bytearray(stride * font.HEIGHT)
        s = (framebuf.FrameBuffer(buf, stride * 8, font.HEIGHT, framebuf.MONO_HLSB), buf, stride)
        _scratch[font] = s
    return s


def width(font, s):
    # Advance of `s` in pixels; unknown characters count as '?'.
    chars = font.CHARS
    w = 0
    for ch in s:
        i = chars.find(ch)
        if i < 0:
            i = chars.find("?")
        if i >= 0:
            w += font.WIDTHS[i]
    return w


@micropython.viper
def _glyph(buf, stride: int, h: int, bm, o: int, gs: int):
    # Glyph rows (gs bytes each, from bm at o) into the scratch cell, padded
    # with paper to the cell's stride: native code, as every redraw copies
    # a few hundred rows (the interpreted loop was most of a render).
    d = ptr8(buf)  # noqa: F821 (viper built-in)
    b = ptr8(bm)  # noqa: F821
    for row in range(h):
        base = row * stride
        for j in range(stride):
            if j < gs:
                d[base + j] = b[o + j]
            else:
                d[base + j] = 0
        o += gs


def draw(fb, font, s, x, y, c=1):
    # Draw `s` with its top at y; returns the x after the last glyph.
    gfb, buf, stride = _cell(font)
    chars, widths, offs, bm = font.CHARS, font.WIDTHS, font.OFFSETS, font.BITMAP
    h = font.HEIGHT
    for ch in s:
        i = chars.find(ch)
        if i < 0:
            i = chars.find("?")
            if i < 0:
                continue
        w = widths[i]
        gs = (w + 7) >> 3
        _glyph(buf, stride, h, bm, offs[2 * i] | (offs[2 * i + 1] << 8), gs)
        if c:
            fb.blit(gfb, x, y, 0)
        else:
            fb.blit(gfb, x, y, 1, _inv_fb)
        x += w
    return x


def small(fb, s, x, y, c=1):
    # framebuf's 8x8 font, plus the few non-ASCII symbols the screens use
    # ("—" for unknown, "°"), which framebuf would draw as blanks.
    for ch in s:
        if ch == "\u2014":
            fb.hline(x + 1, y + 3, 6, c)
            fb.hline(x + 1, y + 4, 6, c)
        elif ch == "\u00a3":
            fb.text("L", x, y, c)
            fb.hline(x, y + 4, 5, c)
        elif ord(ch) < 128:
            fb.text(ch, x, y, c)
        else:
            fb.text("?", x, y, c)
        x += 8
    return x
