"""The co-processor side of ASH (UG101), for the EZSP NCP emulator.

Framing, stuffing, CRC and randomisation are bellows.ash's (frame classes,
AshProtocol._stuff_bytes/_unstuff_bytes, parse_frame), so the firmware's
ASH is checked against code nobody here wrote. This class adds what an NCP
does with the frames: frame and ack numbers, one outstanding DATA frame
with retransmission on a real-time timer (the line is never accelerated),
NAK of damaged frames, RST answered with RSTACK.

A subclass supplies `_command(ezsp_frame)` (a DATA payload from the host)
and `_on_rst()` (the host reset us), and queues EZSP frames in `self.queue`
(then calls `_pump()`).
"""

from __future__ import annotations

import time

import bellows.types as t
from bellows import ash

T_ACK_S = 0.4  # NCP retransmission timeout (real time)


class AshNcp:
    def __init__(self, send_bytes):
        self.send_bytes = send_bytes  # callable(bytes): to the firmware
        self.stats = {"rx_bad": 0, "retx": 0, "naks": 0, "commands": 0}
        self._buf = bytearray()
        self._ash_reset()

    def _ash_reset(self) -> None:
        self.rx_seq = 0  # next host frame expected
        self.tx_seq = 0  # our next frame number
        self.queue: list[bytes] = []  # EZSP frames waiting to be sent
        self.outstanding: tuple[int, bytes] | None = None
        self.sent_at = 0.0
        self.connected = False

    def _rstack(self, code: int) -> None:
        self._write(ash.RStackFrame(version=2, reset_code=t.NcpResetCode(code)))

    def _on_rst(self) -> None:
        raise NotImplementedError

    def _command(self, frame: bytes) -> None:
        raise NotImplementedError

    def _write(self, frame: ash.AshFrame) -> None:
        self.send_bytes(bytes(ash.AshProtocol._stuff_bytes(frame.to_bytes())) + b"\x7e")

    def feed(self, data: bytes) -> None:
        for b in data:
            if b == ash.Reserved.FLAG:
                raw, self._buf = bytes(self._buf), bytearray()
                if raw:
                    self._frame(raw)
            elif b == ash.Reserved.CANCEL:
                self._buf.clear()
            elif b in (ash.Reserved.XON, ash.Reserved.XOFF):
                continue
            else:
                self._buf.append(b)

    def _frame(self, raw: bytes) -> None:
        try:
            frame = ash.parse_frame(bytes(ash.AshProtocol._unstuff_bytes(raw)))
        except Exception:
            self.stats["rx_bad"] += 1
            if raw and not raw[0] & 0x80:
                self._write(ash.NakFrame(res=0, ncp_ready=False, ack_num=self.rx_seq))
            return
        if isinstance(frame, ash.RstFrame):
            self._on_rst()
            return
        if not self.connected:
            return
        if isinstance(frame, (ash.DataFrame, ash.AckFrame, ash.NakFrame)):
            self._acked(frame.ack_num)
        if isinstance(frame, ash.NakFrame) and self.outstanding:
            self.stats["naks"] += 1
            self._send_data(retx=True)
        elif isinstance(frame, ash.DataFrame):
            if frame.frm_num == self.rx_seq:
                self.rx_seq = (self.rx_seq + 1) % 8
                self._write(ash.AckFrame(res=0, ncp_ready=False, ack_num=self.rx_seq))
                self._command(frame.ezsp_frame)
            elif frame.re_tx:
                self._write(ash.AckFrame(res=0, ncp_ready=False, ack_num=self.rx_seq))
            else:
                self._write(ash.NakFrame(res=0, ncp_ready=False, ack_num=self.rx_seq))
        self._pump()

    def _acked(self, ack_num: int) -> None:
        if self.outstanding and ack_num == (self.outstanding[0] + 1) % 8:
            self.outstanding = None

    def _pump(self) -> None:
        if self.outstanding is None and self.queue:
            self.outstanding = (self.tx_seq, self.queue.pop(0))
            self.tx_seq = (self.tx_seq + 1) % 8
            self._send_data(retx=False)

    def _send_data(self, retx: bool) -> None:
        frm, payload = self.outstanding
        self._write(ash.DataFrame(frm_num=frm, re_tx=retx, ack_num=self.rx_seq, ezsp_frame=payload))
        self.sent_at = time.monotonic()
        if retx:
            self.stats["retx"] += 1

    def poll_ash(self) -> None:
        if self.outstanding and time.monotonic() - self.sent_at > T_ACK_S:
            self._send_data(retx=True)
        self._pump()
