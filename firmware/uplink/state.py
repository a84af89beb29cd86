# What the uplink keeps across reboots besides datagram sequence numbers
# (session.SeqSource): the reading epoch and the record of commands run.
#
# Both are small files in the state directory, written whole to a temporary
# name and renamed (atomic on LittleFS), and read defensively: any content
# that does not parse is treated as lost, which is always safe (a new epoch;
# an empty command record is covered by the collector's command order, see
# CmdLog). docs/uplink.md, "Identity across state loss", has the state machine.
import os

from micropython import const

from uplink.datagram import ST_FORGOTTEN, ST_INTERRUPTED

EPOCH_FILE = "uplink_epoch"
CMDS_FILE = "uplink_cmds"
_RING = const(8)  # statuses of the last commands run, for repeated DONEs
_MAX = const(0x3FFFFFFF)  # no count we keep is above this (small ints on the device)


def _save(path, text):
    if path is None:
        return
    tmp = path + ".new"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        try:
            os.rename(tmp, path)  # atomic on LittleFS
        except OSError:
            os.remove(path)  # a filesystem that will not rename over a file (FAT)
            os.rename(tmp, path)
    except OSError:
        pass  # no filesystem: lives in RAM for this boot


def _load(path, n):
    # n non-negative small ints (hex for the first when n < 0), or None.
    if path is None:
        return None
    try:
        with open(path) as f:
            text = f.read(256)
        parts = text.split()
        if len(parts) < n:
            return None
        out = [int(p) for p in parts]
        for v in out:
            if not 0 <= v <= _MAX:
                return None
        return out
    except (OSError, ValueError, UnicodeError):
        return None


class Epoch:
    # The name of the device's reading numbering: readings are identified as
    # (device, epoch, seq) at the collector. A new random epoch whenever the
    # store may hand out a seq that was already sent with other values: the
    # file is lost or unreadable, or the store's newest seq is below the
    # highest seq ever sent under this epoch (`hw`, written before a batch
    # leaves), i.e. the store was wiped or lost its newest sectors. hw only
    # grows with what was sent, so a normal reboot keeps the epoch.
    def __init__(self, path, store_seq):
        self.path = path
        self.id = bytearray(4)
        v = _load(path, 3)
        if v is None or store_seq < v[2] or not (v[0] or v[1]) or v[0] > 0xFFFF or v[1] > 0xFFFF:
            self.new()
        else:
            self.id[0] = v[0] >> 8
            self.id[1] = v[0] & 0xFF
            self.id[2] = v[1] >> 8
            self.id[3] = v[1] & 0xFF
            self.hw = v[2]

    def new(self):
        r = os.urandom(4)
        while r == b"\0\0\0\0":
            r = os.urandom(4)
        self.id[:] = r
        self.hw = 0
        self._write()

    def value(self):
        i = self.id
        return (i[0] << 24) | (i[1] << 16) | (i[2] << 8) | i[3]

    def sending(self, last):
        # A batch up to reading `last` is about to leave under this epoch.
        if last > self.hw:
            self.hw = last
            self._write()

    def _write(self):
        i = self.id
        _save(self.path, "%d %d %d\n" % ((i[0] << 8) | i[1], (i[2] << 8) | i[3], self.hw))


class CmdLog:
    # Commands run exactly once. The collector numbers a device's commands in
    # increasing order and sends the lowest not yet done first (at most
    # CMDS_PER_REPLY a reply), so "run" is one number: `mark`, the highest
    # command id started. A command at or below it is never run again; its
    # DONE is repeated with the status remembered (the last _RING), else
    # ST_FORGOTTEN. The mark is written before the handler runs, with a busy
    # flag cleared after it: a power cut inside a handler leaves the flag,
    # and that command is reported ST_INTERRUPTED, not run a second time.
    def __init__(self, path):
        self.path = path
        self.mark = 0
        self.ids = [0] * _RING
        self.sts = [0] * _RING
        self.n = 0
        v = _load(path, 2)
        if v is not None:
            self.mark = v[0]
            for i in range(min(_RING, (len(v) - 2) // 2)):
                self._remember(v[2 + 2 * i], v[3 + 2 * i] & 0xFF)
            if v[1]:
                self._remember(self.mark, ST_INTERRUPTED)
                self._write(0)

    def _remember(self, cid, st):
        k = self.n % _RING
        self.ids[k] = cid
        self.sts[k] = st
        self.n += 1

    def done_before(self, cid):
        # None if cid is new; else the status to repeat in its DONE.
        if cid > self.mark:
            return None
        for i in range(min(self.n, _RING)):
            if self.ids[i] == cid:
                return self.sts[i]
        return ST_FORGOTTEN

    def begin(self, cid):
        self.mark = cid
        self._write(1)

    def end(self, cid, st):
        self._remember(cid, st)
        self._write(0)

    def _write(self, busy):
        parts = ["%d %d" % (self.mark, busy)]
        for i in range(min(self.n, _RING)):
            parts.append("%d %d" % (self.ids[i], self.sts[i]))
        _save(self.path, " ".join(parts) + "\n")
