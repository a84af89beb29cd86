"""Supplier messages and prepayment on the glass, the whole device simulated
(ihd sim: emulator with --message / --cancel-message / --prepay,
collector, the firmware on the 96 KB mp32 build with the board's
METER_SUPPLIER on), over EZSP and RAVEn, an hour and a half each.

The oracle for what the glass shows is the golden images of the layouts
(host_tests/display/golden, themselves from the real SPI stream): the sim's
refreshes, rendered from its recorded panel bus by ihd panel, must carry
the message box with exactly the golden live_message body while a message is
on show, and the chart (no box) before, between and after; on the prepay
meter, the "Credit" heading and the low-credit banner of the golden
live_prepay_low, and a headline figure that is the big-font rendering of a
credit the emulator answered (tools/ihd/emulators/supplier.py's figures). The
emulator's script is the oracle for when: the status lines (every 10
simulated minutes) carry message 7 until it was cancelled, then message
8 (EZSP: until its 15 minutes expired; RAVEn: until a cancel-all), then none.

History (EZSP run): the meter ran 9 days before the run (--meter-days 9),
so its history attributes give the 8 days before today at once: the status
line's history has the emulator's own day figures (its register at each
local midnight, tools/ihd/emulators/meter_history.py, carried in meter_state.json),
and the history screen on the glass has a filled bar for each of the 8 with
the height those figures give (display/screen_history.py's scale: the
largest day). Our own daily totals across a reboot: mpt_history.py.

RAVEn: the API has no message duration (MessageCluster has no such field),
no prepayment and no ambient indicator: its run shows, cancels (Queue
"Cancel Pending"), shows again and cancels all (an empty Text).
"""

from __future__ import annotations

import json
import subprocess

import pytest
from PIL import Image

import mpy as mpymod

# the device's heap, the 96 KB budget this is about (the links on the wheel:
# test_prepay_e2e.py, test_raven_messages.py)
RUNTIMES = ("mp32",)
ROOT = mpymod.ROOT
START = 1767225600  # ihd.sim.proc.START_UTC
GOLDEN = ROOT / "host_tests" / "display" / "golden" / "ssd1680_296x128"
TEXT = "Planned work on 3 May: your supply may be off 10:00-12:00."  # host_tests/display/scenes.py MESSAGE
W, H, MID_H, BIG_H = 296, 128, 15, 26  # panel; display/font_mid.py, font_big.py HEIGHT
COL = W // 2
BOX = (COL + 4, MID_H + 2)  # the right column's message box (display/screens.py _right)
BODY = (BOX[0] + 1, BOX[1] + 10, W - 1, BOX[1] + 11 + 4 * 9)  # its 4 lines of TEXT
TITLE_TAIL = (BOX[0] + 100, BOX[1], W - 1, BOX[1] + 9)  # title bar past the title: black in the box only
HEAD = (0, 0, COL - 40, MID_H)
HIST_HEAD = (0, 0, 60, MID_H)  # "Credit" (left of any fault tag)
BANNER = (0, H - MID_H, W, H)
FIGURE = (0, MID_H + 2, COL, MID_H + 2 + BIG_H)
# simulated seconds from the run's start: the EZSP network takes up to ~1,400 of
# them to come up at 600x on a loaded host (its handshake runs in real time), and
# the emulator holds its script until then; its log says when each was sent
SHOW7, CANCEL7, SHOW8, END8 = 2000, 3000, 3300, 4200  # message 8: 15 minutes (EZSP), or cancel-all (RAVEn)
SCRIPT = {
    "ezsp": ["--meter-days", "9", "--prepay", "3000", "--message", f"{SHOW7}:7:-:{TEXT}"]
    + ["--cancel-message", f"{CANCEL7}:7", "--message", f"{SHOW8}:8:15:{TEXT}"],
    "raven": ["--message", f"{SHOW7}:7:-:{TEXT}", "--cancel-message", f"{CANCEL7}:7"]
    + ["--message", f"{SHOW8}:9:-:{TEXT}", "--cancel-message", f"{END8}:all"],
}


@pytest.fixture(scope="module", params=["ezsp", "raven"])
def sim(request, tmp_path_factory):
    protocol = request.param
    out = tmp_path_factory.mktemp(f"sim-supplier-{protocol}")
    cmd = [*mpymod.sim_command("mp32"), "--protocol", protocol, "--hours", "1.5", "--speed", "600"]
    cmd += [*SCRIPT[protocol], "--drain-s", "20", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:] + (out / "firmware.log").read_text()[-3000:]
    frames = sorted((out / "display").glob("refresh*.png"), key=lambda p: int(p.stem[len("refresh") :]))
    imgs = [Image.open(p).convert("1") for p in frames]
    lines = [json.loads(ln[7:]) for ln in (out / "firmware.log").read_text().splitlines() if ln.startswith("status ")]
    events = [json.loads(ln) for ln in (out / "emulator.jsonl").read_text().splitlines()]
    marks = json.loads((out / "meter_state.json").read_text())["marks"]
    return protocol, imgs, lines, events, {int(k): v for k, v in marks.items()}


def _crop(img, box):
    return img.crop(box).tobytes()


def _golden(name):
    return Image.open(GOLDEN / f"{name}.pbm").convert("1")


def _live(imgs):
    # the live screens' frames: not the history screen (its heading) nor
    # diagnostics (a black bar across the top)
    hist = _crop(_golden("history"), HIST_HEAD)
    return [
        im for im in imgs if _crop(im, HIST_HEAD) != hist and not (im.getpixel((COL, 0)) == 0 == im.getpixel((COL, 14)))
    ]


def _runs(states):
    out = []
    for s in states:
        if not out or out[-1] != s:
            out.append(s)
    return out


def test_a_message_appears_on_the_glass_and_goes_when_cancelled_or_expired(sim):
    protocol, imgs, lines, events, _ = sim
    imgs = _live(imgs)
    assert len(imgs) >= 20, len(imgs)
    body = _crop(_golden("live_message"), BODY)
    assert _crop(_golden("live_message"), TITLE_TAIL) != _crop(_golden("live_tariff"), TITLE_TAIL)
    boxed = [_crop(im, TITLE_TAIL) == _crop(_golden("live_message"), TITLE_TAIL) for im in imgs]
    # the box holds the message exactly as the golden image (the same text)
    assert all(_crop(im, BODY) == body for im, b in zip(imgs, boxed, strict=True) if b)
    assert not any(_crop(im, BODY) == body for im, b in zip(imgs, boxed, strict=True) if not b)
    # none, shown, gone (cancelled), shown, gone (expired / cancel-all)
    assert _runs(boxed) == [False, True, False, True, False], [int(b) for b in boxed]
    print(protocol, "live frames with the message box:", "".join("m" if b else "." for b in boxed))
    # when: as the emulator's log says it sent each, at every status line
    sent = {}
    for e in events:
        if e.get("kind") == "message" and (e.get("what") or e.get("why")) in ("display", "cancel", "cancel_all"):
            sent.setdefault((e.get("what") or e.get("why"), e.get("id")), e["t"] - START)
    second = 8 if protocol == "ezsp" else 9
    t7, c7, t8 = sent[("display", 7)], sent[("cancel", 7)], sent[("display", second)]
    end8 = SHOW8 + 900 if protocol == "ezsp" else sent[("cancel_all", None)]  # 15 minutes from its start time
    assert SHOW7 <= t7 < SHOW7 + 120 and CANCEL7 <= c7 < CANCEL7 + 120 and SHOW8 <= t8 < SHOW8 + 120, sent
    assert END8 <= end8 < END8 + 120, sent
    for s in lines:
        t = s["utc"] - START
        m = s.get("message")
        want = 7 if t7 <= t < c7 else second if t8 <= t < end8 else None
        if any(0 <= t - at < 60 for at in (t7, c7, t8, end8)):
            continue  # a message or its end in flight
        assert (m and m["id"]) == want, (t, m, sent)
        if m:
            assert m["text"] == TEXT


def test_prepay_balance_is_the_headline_with_the_low_credit_banner(sim, mpy):
    protocol, imgs, lines, events, _ = sim
    if protocol != "ezsp":
        assert all("prepay" not in s or s["prepay"] is None for s in lines)  # the RAVEn API has no prepayment
        return
    gold = _golden("live_prepay_low")
    imgs = _live(imgs)
    prepay = [im for im in imgs if _crop(im, HEAD) == _crop(gold, HEAD)]
    # from the first prepayment read on, every frame is the prepay layout
    assert len(prepay) >= len(imgs) - 3, (len(prepay), len(imgs))
    assert all(_crop(im, BANNER) == _crop(gold, BANNER) for im in prepay)  # "Low credit: top up soon"
    # the headline: a credit the emulator answered (raw, 4 digits: minor units = raw / 100), in the big font
    answered = sorted({e["credit"] for e in events if e.get("kind") == "prepay"})
    assert answered and all(0 < c <= 3000 for c in answered), answered
    minors = sorted({c // 100 for c in answered} | {-(-c // 100) for c in answered})
    code = (
        "import framebuf\nfrom display import screen_prepay\nfrom display import font_mid as MID\n"
        f"buf = bytearray({W} * 16)\nfb = framebuf.FrameBuffer(buf, {W}, {H}, framebuf.MONO_VLSB)\n"
        f"for c in {minors}:\n    fb.fill(0)\n    screen_prepay.balance(fb, c, '\\u00a3', 0, MID.HEIGHT + 2)\n"
        "    print('B', c, bytes(buf).hex())\n"
    )
    out = mpy.run(code, heap="128k").stdout
    want = {}
    for ln in out.splitlines():
        if ln.startswith("B "):
            _, c, hx = ln.split()
            b = bytes.fromhex(hx)
            img = Image.new("1", (W, H), 1)
            for y in range(FIGURE[1], FIGURE[3]):
                for x in range(FIGURE[2]):
                    if b[(y // 8) * W + x] >> (y % 8) & 1:
                        img.putpixel((x, y), 0)
            want[_crop(img, FIGURE)] = int(c)
    assert len(want) == len(minors)
    shown = [want.get(_crop(im, FIGURE)) for im in prepay]
    assert None not in shown, shown
    assert len(set(shown)) >= 1 and max(shown) <= 30, shown  # £0.30 at the start, falling
    print("headline credit (p) by prepay frame:", shown, "of", len(imgs), "live frames")
    # the status lines say the same: low credit, supply on, the credit in minor units
    last = [s["prepay"] for s in lines if s.get("prepay")][-1]
    assert last["low"] is True and last["supply"] == "on" and last["credit"] in minors, last


def test_eight_days_of_the_meters_history_on_the_history_screen(sim):
    protocol, imgs, lines, _, marks = sim
    if protocol != "ezsp":
        return  # the RAVEn API has no history attributes (our own daily totals: mpt_history.py)
    today = START // 86400  # 1 January, GMT: local days are UTC days
    want = [(marks[d + 1] - marks[d]) // 3600 for d in range(today - 8, today)]  # Wh, as the meter serves them
    assert all(w > 1000 for w in want), want  # a household's day
    hist = [s["history"] for s in lines if s.get("history") and s["history"]["days"][0] is not None]
    assert hist, [s.get("history") for s in lines]
    for h in hist:
        assert h["days"][:8] == want, (h["days"], want)
    # the glass: the history screen (its heading as golden history.pbm), a
    # filled bar of the right height for each of the 8 days
    gold = _golden("history")
    shots = [im for im in imgs if _crop(im, HIST_HEAD) == _crop(gold, HIST_HEAD)]
    assert shots, "no history screen drawn"
    top, base, bw = MID_H + 10, H - 2 * MID_H - 12, (W // 3 - 6) // 9
    drawn = 0
    for im in shots:
        px = im.load()
        scale = max(max(want), 100)  # today, an hour old, is smaller than any whole day
        ok = True
        for i, v in enumerate(want):
            bh = (v * (base - top) + scale - 1) // scale
            x = i * bw + bw // 2
            col = [px[x, y] == 0 for y in range(top - 2, base)]
            ok &= col == [False] * (base - bh - top + 2) + [True] * bh
        drawn += ok
    assert drawn >= 1, "no history screen with the 8 days' bars"
    print("history screens", len(shots), "with the 8 days' bars", drawn, "days", want)
