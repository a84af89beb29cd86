# Text on a framebuf.FrameBuffer: the bitmap fonts made by tools/ihd/dev/mkfont.py
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
_index = {}  # font module -> _glyphs() tables
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


def _glyphs(font):
    # code point -> glyph index + 1 (0: none): a bytearray for printable
    # ASCII (32..127), a dict for the few others; built once per font. Strings are walked as UTF-8
    # bytes: iterating a str makes a one-character str per character, and
    # each is looked up among all interned strings (most of a redraw's
    # cost on the Unix port).
    g = _index.get(font)
    if g is None:
        ascii_ = bytearray(96)
        other = {}
        b = font.CHARS.encode()  # not chars[i]: that interns each character
        k = 0
        i = 1
        while k < len(b):
            cp, k = _next(b, k)
            if 32 <= cp < 128:
                ascii_[cp - 32] = i
            else:
                other[cp] = i
            i += 1
        q = ascii_[0x3F - 32]  # '?' stands in for the unknown
        g = _index[font] = (ascii_, other, q)
    return g


def _next(b, k):
    # (code point, next k) of the UTF-8 sequence at b[k]
    c = b[k]
    if c < 0x80:
        return c, k + 1
    if c < 0xE0:
        return ((c & 0x1F) << 6) | (b[k + 1] & 0x3F), k + 2
    if c < 0xF0:
        return ((c & 0x0F) << 12) | ((b[k + 1] & 0x3F) << 6) | (b[k + 2] & 0x3F), k + 3
    return ((c & 0x07) << 18) | ((b[k + 1] & 0x3F) << 12) | ((b[k + 2] & 0x3F) << 6) | (b[k + 3] & 0x3F), k + 4


def _glyph_index(g, cp):
    # glyph index of code point cp, '?' when the font lacks it; -1: neither
    i = g[0][cp - 32] if 32 <= cp < 128 else g[1].get(cp, 0)
    return (i or g[2]) - 1


def width(font, s):
    # Advance of `s` in pixels; unknown characters count as '?'.
    g = _glyphs(font)
    widths = font.WIDTHS
    b = s.encode()
    n = len(b)
    w = 0
    k = 0
    while k < n:
        cp, k = _next(b, k)
        i = _glyph_index(g, cp)
        if i >= 0:
            w += widths[i]
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
    g = _glyphs(font)
    widths, offs, bm = font.WIDTHS, font.OFFSETS, font.BITMAP
    h = font.HEIGHT
    b = s.encode()
    n = len(b)
    k = 0
    while k < n:
        cp, k = _next(b, k)
        i = _glyph_index(g, cp)
        if i < 0:
            continue
        w = widths[i]
        _glyph(buf, stride, h, bm, offs[2 * i] | (offs[2 * i + 1] << 8), (w + 7) >> 3)
        if c:
            fb.blit(gfb, x, y, 0)
        else:
            fb.blit(gfb, x, y, 1, _inv_fb)
        x += w
    return x


def small(fb, s, x, y, c=1):
    # framebuf's 8x8 font, plus the few non-ASCII symbols the screens use
    # ("—" for unknown, "£"), which framebuf would draw as blanks. Plain
    # ASCII (nearly every call) goes to framebuf in one call.
    if len(s.encode()) == len(s):
        fb.text(s, x, y, c)
        return x + 8 * len(s)
    for ch in s:
        if ch == "\u2014":
            fb.hline(x + 1, y + 3, 6, c)
            fb.hline(x + 1, y + 4, 6, c)
        elif ch == "\u2026":  # an ellipsis: a cut supplier message
            for dx in (1, 3, 5):
                fb.pixel(x + dx, y + 6, c)
        elif ch == "\u00a3":
            fb.text("L", x, y, c)
            fb.hline(x, y + 4, 5, c)
        elif ord(ch) < 128:
            fb.text(ch, x, y, c)
        else:
            fb.text("?", x, y, c)
        x += 8
    return x
