# ASH link layer, host side (Silicon Labs UG101), for an EZSP co-processor.
#
# Owns: byte stuffing, CRC-CCITT, data-field randomisation, the DATA / ACK /
# NAK / RST / RSTACK / ERROR frames, frame and ack numbers, retransmission
# with an adaptive timeout, and reset / resynchronisation. It knows nothing
# of EZSP: complete, in-sequence DATA payloads go up through on_frame, link
# events (co-processor reset, error, retransmission exhausted) through
# on_event.
#
# Streaming and allocation-free after construction: received bytes are
# unstuffed into one preallocated buffer, frames are built in preallocated
# buffers, and payloads are handed up as (buffer, offset, length) so that no
# slice or memoryview is created per frame.
#
# One DATA frame may be outstanding (TX_K = 1, as bellows and the NCPs in the
# field use): EZSP is strictly command/response, so a window buys nothing.
from time import ticks_add, ticks_diff, ticks_ms

import micropython
from micropython import const

FLAG = const(0x7E)
ESC = const(0x7D)
XON = const(0x11)
XOFF = const(0x13)
SUB = const(0x18)
CAN = const(0x1A)

MAX_DATA = const(256)  # longest EZSP frame accepted (bellows' limit too)
_RX_MAX = const(259)  # control + data + CRC
_TX_MAX = const(2 * 259 + 2)  # fully stuffed frame + flag

# Link states.
RESETTING = const(0)
CONNECTED = const(1)
FAILED = const(2)

# on_event(kind, code) kinds.
EV_RSTACK = const(1)  # NCP (re)started; code = reset reason (2 = power-on, 11 = software)
EV_ERROR = const(2)  # NCP sent ERROR; code = reason; a reset is required
EV_TX_FAILED = const(3)  # DATA frame not acknowledged after all retries
EV_RESET_TIMEOUT = const(4)  # RST sent, no RSTACK within T_RSTACK_MAX

# Timing (UG101 defaults, ms).
T_RX_ACK_INIT = const(1600)
T_RX_ACK_MIN = const(400)
T_RX_ACK_MAX = const(3200)
T_RSTACK_MAX = const(3200)
ACK_RETRIES = const(4)  # retransmissions before EV_TX_FAILED (5 sends, as bellows)


# Constant tables as bytes literals: frozen, they stay in flash (built at
# import they took 768 bytes of heap). host_tests/meter_ezsp/test_ash_oracle.py
# checks both against bellows.
# CRC-CCITT (poly 0x1021) table, big-endian pairs
CRC_TABLE = (
    b"\x00\x00\x10\x21\x20\x42\x30\x63\x40\x84\x50\xa5\x60\xc6\x70\xe7\x81\x08\x91\x29\xa1\x4a\xb1\x6b"
    b"\xc1\x8c\xd1\xad\xe1\xce\xf1\xef\x12\x31\x02\x10\x32\x73\x22\x52\x52\xb5\x42\x94\x72\xf7\x62\xd6"
    b"\x93\x39\x83\x18\xb3\x7b\xa3\x5a\xd3\xbd\xc3\x9c\xf3\xff\xe3\xde\x24\x62\x34\x43\x04\x20\x14\x01"
    b"\x64\xe6\x74\xc7\x44\xa4\x54\x85\xa5\x6a\xb5\x4b\x85\x28\x95\x09\xe5\xee\xf5\xcf\xc5\xac\xd5\x8d"
    b"\x36\x53\x26\x72\x16\x11\x06\x30\x76\xd7\x66\xf6\x56\x95\x46\xb4\xb7\x5b\xa7\x7a\x97\x19\x87\x38"
    b"\xf7\xdf\xe7\xfe\xd7\x9d\xc7\xbc\x48\xc4\x58\xe5\x68\x86\x78\xa7\x08\x40\x18\x61\x28\x02\x38\x23"
    b"\xc9\xcc\xd9\xed\xe9\x8e\xf9\xaf\x89\x48\x99\x69\xa9\x0a\xb9\x2b\x5a\xf5\x4a\xd4\x7a\xb7\x6a\x96"
    b"\x1a\x71\x0a\x50\x3a\x33\x2a\x12\xdb\xfd\xcb\xdc\xfb\xbf\xeb\x9e\x9b\x79\x8b\x58\xbb\x3b\xab\x1a"
    b"\x6c\xa6\x7c\x87\x4c\xe4\x5c\xc5\x2c\x22\x3c\x03\x0c\x60\x1c\x41\xed\xae\xfd\x8f\xcd\xec\xdd\xcd"
    b"\xad\x2a\xbd\x0b\x8d\x68\x9d\x49\x7e\x97\x6e\xb6\x5e\xd5\x4e\xf4\x3e\x13\x2e\x32\x1e\x51\x0e\x70"
    b"\xff\x9f\xef\xbe\xdf\xdd\xcf\xfc\xbf\x1b\xaf\x3a\x9f\x59\x8f\x78\x91\x88\x81\xa9\xb1\xca\xa1\xeb"
    b"\xd1\x0c\xc1\x2d\xf1\x4e\xe1\x6f\x10\x80\x00\xa1\x30\xc2\x20\xe3\x50\x04\x40\x25\x70\x46\x60\x67"
    b"\x83\xb9\x93\x98\xa3\xfb\xb3\xda\xc3\x3d\xd3\x1c\xe3\x7f\xf3\x5e\x02\xb1\x12\x90\x22\xf3\x32\xd2"
    b"\x42\x35\x52\x14\x62\x77\x72\x56\xb5\xea\xa5\xcb\x95\xa8\x85\x89\xf5\x6e\xe5\x4f\xd5\x2c\xc5\x0d"
    b"\x34\xe2\x24\xc3\x14\xa0\x04\x81\x74\x66\x64\x47\x54\x24\x44\x05\xa7\xdb\xb7\xfa\x87\x99\x97\xb8"
    b"\xe7\x5f\xf7\x7e\xc7\x1d\xd7\x3c\x26\xd3\x36\xf2\x06\x91\x16\xb0\x66\x57\x76\x76\x46\x15\x56\x34"
    b"\xd9\x4c\xc9\x6d\xf9\x0e\xe9\x2f\x99\xc8\x89\xe9\xb9\x8a\xa9\xab\x58\x44\x48\x65\x78\x06\x68\x27"
    b"\x18\xc0\x08\xe1\x38\x82\x28\xa3\xcb\x7d\xdb\x5c\xeb\x3f\xfb\x1e\x8b\xf9\x9b\xd8\xab\xbb\xbb\x9a"
    b"\x4a\x75\x5a\x54\x6a\x37\x7a\x16\x0a\xf1\x1a\xd0\x2a\xb3\x3a\x92\xfd\x2e\xed\x0f\xdd\x6c\xcd\x4d"
    b"\xbd\xaa\xad\x8b\x9d\xe8\x8d\xc9\x7c\x26\x6c\x07\x5c\x64\x4c\x45\x3c\xa2\x2c\x83\x1c\xe0\x0c\xc1"
    b"\xef\x1f\xff\x3e\xcf\x5d\xdf\x7c\xaf\x9b\xbf\xba\x8f\xd9\x9f\xf8\x6e\x17\x7e\x36\x4e\x55\x5e\x74"
    b"\x2e\x93\x3e\xb2\x0e\xd1\x1e\xf0"
)
# UG101 pseudo-random sequence (seed 0x42, then r >> 1, ^ 0xB8 when r was odd)
RAND = (
    b"\x42\x21\xa8\x54\x2a\x15\xb2\x59\x94\x4a\x25\xaa\x55\x92\x49\x9c\x4e\x27\xab\xed\xce\x67\x8b\xfd"
    b"\xc6\x63\x89\xfc\x7e\x3f\xa7\xeb\xcd\xde\x6f\x8f\xff\xc7\xdb\xd5\xd2\x69\x8c\x46\x23\xa9\xec\x76"
    b"\x3b\xa5\xea\x75\x82\x41\x98\x4c\x26\x13\xb1\xe0\x70\x38\x1c\x0e\x07\xbb\xe5\xca\x65\x8a\x45\x9a"
    b"\x4d\x9e\x4f\x9f\xf7\xc3\xd9\xd4\x6a\x35\xa2\x51\x90\x48\x24\x12\x09\xbc\x5e\x2f\xaf\xef\xcf\xdf"
    b"\xd7\xd3\xd1\xd0\x68\x34\x1a\x0d\xbe\x5f\x97\xf3\xc1\xd8\x6c\x36\x1b\xb5\xe2\x71\x80\x40\x20\x10"
    b"\x08\x04\x02\x01\xb8\x5c\x2e\x17\xb3\xe1\xc8\x64\x32\x19\xb4\x5a\x2d\xae\x57\x93\xf1\xc0\x60\x30"
    b"\x18\x0c\x06\x03\xb9\xe4\x72\x39\xa4\x52\x29\xac\x56\x2b\xad\xee\x77\x83\xf9\xc4\x62\x31\xa0\x50"
    b"\x28\x14\x0a\x05\xba\x5d\x96\x4b\x9d\xf6\x7b\x85\xfa\x7d\x86\x43\x99\xf4\x7a\x3d\xa6\x53\x91\xf0"
    b"\x78\x3c\x1e\x0f\xbf\xe7\xcb\xdd\xd6\x6b\x8d\xfe\x7f\x87\xfb\xc5\xda\x6d\x8e\x47\x9b\xf5\xc2\x61"
    b"\x88\x44\x22\x11\xb0\x58\x2c\x16\x0b\xbd\xe6\x73\x81\xf8\x7c\x3e\x1f\xb7\xe3\xc9\xdc\x6e\x37\xa3"
    b"\xe9\xcc\x66\x33\xa1\xe8\x74\x3a\x1d\xb6\x5b\x95\xf2\x79\x84\x42"
)


@micropython.viper
def crc16(buf: ptr8, start: int, n: int, tab: ptr8) -> int:  # noqa: F821 (viper types)
    # CRC-CCITT, init 0xFFFF, no reflection, no final XOR (binascii.crc_hqx).
    crc = 0xFFFF
    i = start
    end = start + n
    while i < end:
        j = ((crc >> 8) ^ buf[i]) & 0xFF
        crc = (((crc << 8) & 0xFFFF) ^ (tab[2 * j] << 8) ^ tab[2 * j + 1]) & 0xFFFF
        i += 1
    return crc


@micropython.viper
def randomise(buf: ptr8, start: int, n: int, rnd: ptr8):  # noqa: F821
    # XOR with the pseudo-random sequence; its own inverse.
    i = 0
    while i < n:
        buf[start + i] = buf[start + i] ^ rnd[i]
        i += 1


@micropython.viper
def stuff(src: ptr8, n: int, dst: ptr8) -> int:  # noqa: F821
    # Escape reserved bytes of src[0:n] into dst, append a flag; returns length.
    o = 0
    i = 0
    while i < n:
        b = src[i]
        if b == 0x7E or b == 0x7D or b == 0x11 or b == 0x13 or b == 0x18 or b == 0x1A:
            dst[o] = 0x7D
            dst[o + 1] = b ^ 0x20
            o += 2
        else:
            dst[o] = b
            o += 1
        i += 1
    dst[o] = 0x7E
    return o + 1


class Ash:
    # write(buf, n): send n bytes of buf to the UART.
    # on_frame(buf, off, n): an in-sequence DATA payload (derandomised);
    #   valid only during the call.
    # on_event(kind, code): EV_* above.
    # ticks(): monotonic ms (the UART runs in real time even when the
    #   device clock is accelerated, so this defaults to time.ticks_ms).
    def __init__(self, write, on_frame, on_event, ticks=ticks_ms):
        self._write = write
        self._on_frame = on_frame
        self._on_event = on_event
        self._ticks = ticks
        self._rx = bytearray(_RX_MAX)
        self._n = 0
        self._esc = False
        self._discard = False  # SUB seen or overflow: drop until next flag
        self._raw = bytearray(_RX_MAX)  # frame before stuffing
        self._out = bytearray(_TX_MAX)  # stuffed frame
        self._txp = bytearray(MAX_DATA)  # outstanding DATA payload (plain)
        self._txn = 0
        self._pending = False
        self._tx_frm = 0
        self._tries = 0
        self._sent_at = 0
        self._deadline = 0
        self.state = RESETTING
        self._frm = 0  # next frame number to send
        self._ack = 0  # next frame number expected (our ackNum)
        self._reject = False
        self._t_ack = T_RX_ACK_INIT
        # Counters for link supervision (frames good/bad/retransmitted ...).
        self.rx_good = 0
        self.rx_bad = 0  # CRC, length, control or escape errors
        self.rx_dup = 0  # retransmitted duplicates we had already
        self.rx_seq_err = 0  # out of sequence, NAKed
        self.tx_frames = 0
        self.retx = 0  # our DATA frames sent again (timeout or NAK)
        self.naks_rx = 0
        self.resets = 0  # RSTACKs received
        self.errors = 0  # ERROR frames received
        self.cancelled = 0  # frames dropped by CAN / SUB / overflow
        # Capture decoding (meter/ezsp_capture.py): accept DATA frames in any
        # order, drop retransmitted duplicates, never write; on_bad(reason).
        self.passive = False
        self.on_bad = None
        self._last = -1

    # -- receive --------------------------------------------------------------
    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def feed(self, data, n):
        # Push n received bytes through the deframer.
        rx = self._rx
        cnt = self._n
        esc = self._esc
        discard = self._discard
        for i in range(n):
            b = data[i]
            if b == FLAG:
                if discard:
                    discard = False
                elif esc:
                    self._bad("escape before flag")
                elif cnt:
                    self._n = 0
                    self._frame(cnt)
                cnt = 0
                esc = False
            elif b == ESC:
                esc = True
            elif b == CAN:
                if cnt or esc:
                    self.cancelled += 1
                cnt = 0
                esc = False
                discard = False
            elif b == SUB:
                discard = True
                cnt = 0
                esc = False
                self.cancelled += 1
            elif b == XON or b == XOFF:
                pass  # software flow control is not used; never data
            elif discard:
                pass
            else:
                if esc:
                    b ^= 0x20
                    esc = False
                    if b != FLAG and b != ESC and b != XON and b != XOFF and b != SUB and b != CAN:
                        # Escaping a non-reserved byte is a framing error.
                        discard = True
                        cnt = 0
                        self._bad("escaped byte not reserved")
                        continue
                if cnt < _RX_MAX:
                    rx[cnt] = b
                    cnt += 1
                else:
                    discard = True
                    cnt = 0
                    self._bad("frame too long")
        self._n = cnt
        self._esc = esc
        self._discard = discard

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _frame(self, n):
        rx = self._rx
        if n < 3 or crc16(rx, 0, n, CRC_TABLE) != 0:  # type: ignore[arg-type]  # viper ptr8 takes any buffer
            self._bad("CRC" if n >= 3 else "frame too short")
            if n >= 1 and not rx[0] & 0x80:
                self._nak()  # damaged DATA frame: ask for it again
            return
        c = rx[0]
        if not c & 0x80:  # DATA
            if n < 6:  # EZSP needs at least sequence, control and id
                self._bad("DATA too short")
                self._nak()
                return
            self.rx_good += 1
            frm = (c >> 4) & 7
            if self.passive:  # capture decoding: every frame once, no replies
                if c & 0x08 and frm == self._last:
                    self.rx_dup += 1
                    return
                self._last = frm
                randomise(rx, 1, n - 3, RAND)  # type: ignore[arg-type]  # viper ptr8 takes any buffer
                self._on_frame(rx, 1, n - 3)
                return
            self._acked(c & 7)
            if self.state != CONNECTED:
                return
            if frm == self._ack:
                self._ack = (frm + 1) & 7
                self._reject = False
                self._control(0x80)  # ACK
                randomise(rx, 1, n - 3, RAND)  # type: ignore[arg-type]  # viper ptr8 takes any buffer
                self._on_frame(rx, 1, n - 3)
            elif c & 0x08:  # retransmission of a frame we already have
                self.rx_dup += 1
                self._control(0x80)
            else:
                self.rx_seq_err += 1
                self._nak()
        elif c & 0xE0 == 0x80:  # ACK
            if n != 3:
                self._bad("ACK length")
                return
            self.rx_good += 1
            self._acked(c & 7)
        elif c & 0xE0 == 0xA0:  # NAK
            if n != 3:
                self._bad("NAK length")
                return
            self.rx_good += 1
            self.naks_rx += 1
            self._acked(c & 7)
            if self._pending and self.state == CONNECTED:
                self._tries += 1
                if self._tries > ACK_RETRIES:
                    self._fail()
                else:
                    self._transmit(True)
        elif c == 0xC1 or c == 0xC2:  # RSTACK / ERROR: version 2, reason
            if n != 5 or rx[1] != 2:
                self._bad("RSTACK/ERROR format")
                return
            self.rx_good += 1
            code = rx[2]
            if c == 0xC1:
                self.resets += 1
                self._restart(CONNECTED)
                self._on_event(EV_RSTACK, code)
            else:
                self.errors += 1
                self.state = FAILED
                self._pending = False
                self._on_event(EV_ERROR, code)
        else:  # RST (host to NCP only) or an undefined control byte
            self._bad("control byte")

    def _bad(self, reason):
        self.rx_bad += 1
        if self.on_bad is not None:
            self.on_bad(reason)

    def _acked(self, ack_num):
        # ack_num is the next frame the NCP expects: ours is done when it
        # is one past the outstanding frame number.
        if self._pending and ack_num == (self._tx_frm + 1) & 7:
            self._pending = False
            # UG101: t_rx_ack = 7/8 t_rx_ack + 1/2 measured, clamped.
            rtt = ticks_diff(self._ticks(), self._sent_at)
            t = (self._t_ack * 7) // 8 + rtt // 2
            self._t_ack = T_RX_ACK_MIN if t < T_RX_ACK_MIN else T_RX_ACK_MAX if t > T_RX_ACK_MAX else t

    def _nak(self):
        # One NAK per reject condition (UG101), cleared by a good frame.
        if not self._reject and self.state == CONNECTED:
            self._reject = True
            self._control(0xA0)

    # -- transmit -------------------------------------------------------------
    def _control(self, base):
        # ACK (0x80) or NAK (0xA0) carrying our ackNum; nRdy is never set.
        if self.passive:
            return
        self._raw[0] = base | self._ack
        self._send_raw(1)

    def _send_raw(self, n):
        raw = self._raw
        c = crc16(raw, 0, n, CRC_TABLE)  # type: ignore[arg-type]  # viper ptr8 takes any buffer
        raw[n] = c >> 8
        raw[n + 1] = c & 0xFF
        m = stuff(raw, n + 2, self._out)  # type: ignore[arg-type]  # viper ptr8 takes any buffer
        self._write(self._out, m)

    def busy(self):
        return self._pending

    def send(self, payload, n):
        # Queue one EZSP frame (payload[0:n]); False if one is outstanding,
        # the link is not up, or it is too long.
        if self._pending or self.state != CONNECTED or n > MAX_DATA or n < 3:
            return False
        txp = self._txp
        for i in range(n):
            txp[i] = payload[i]
        self._txn = n
        self._tx_frm = self._frm
        self._frm = (self._frm + 1) & 7
        self._pending = True
        self._tries = 0
        self._transmit(False)
        return True

    def _transmit(self, re_tx):
        n = self._txn
        raw = self._raw
        raw[0] = (self._tx_frm << 4) | (8 if re_tx else 0) | self._ack
        txp = self._txp
        for i in range(n):
            raw[1 + i] = txp[i]
        randomise(raw, 1, n, RAND)  # type: ignore[arg-type]  # viper ptr8 takes any buffer
        self._send_raw(n + 1)
        self.tx_frames += 1
        if re_tx:
            self.retx += 1
        now = self._ticks()
        self._sent_at = now
        self._deadline = ticks_add(now, self._t_ack)

    def reset(self):
        # Host-initiated reset: CAN flushes any partial frame at the NCP,
        # then RST. Everything outstanding is dropped.
        self._restart(RESETTING)
        self._raw[0] = 0xC0
        self._out[0] = CAN
        c = crc16(self._raw, 0, 1, CRC_TABLE)  # type: ignore[arg-type]  # viper ptr8 takes any buffer
        self._raw[1] = c >> 8
        self._raw[2] = c & 0xFF
        m = stuff(self._raw, 3, memoryview(self._out)[1:])  # type: ignore[arg-type]  # viper ptr8 takes any buffer
        self._write(self._out, m + 1)
        self._deadline = ticks_add(self._ticks(), T_RSTACK_MAX)

    def _restart(self, state):
        self.state = state
        self._frm = 0
        self._ack = 0
        self._pending = False
        self._reject = False
        self._t_ack = T_RX_ACK_INIT

    def _fail(self):
        self._pending = False
        self.state = FAILED
        self._on_event(EV_TX_FAILED, 0)

    # -- timers ---------------------------------------------------------------
    def poll(self):
        # Call every few tens of ms: retransmission and reset timeouts.
        if self.state == RESETTING:
            if ticks_diff(self._ticks(), self._deadline) >= 0:
                self.state = FAILED
                self._on_event(EV_RESET_TIMEOUT, 0)
            return
        if not self._pending or ticks_diff(self._ticks(), self._deadline) < 0:
            return
        self._tries += 1
        if self._tries > ACK_RETRIES:
            self._fail()
            return
        # UG101: no ACK within t_rx_ack doubles it.
        t = self._t_ack * 2
        self._t_ack = T_RX_ACK_MAX if t > T_RX_ACK_MAX else t
        self._transmit(True)
