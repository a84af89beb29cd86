# Test double of the reading store (firmware/store) for the uplink tests:
# the same protocol (append -> seq, flush, readings_from, cursor,
# set_cursor), persisted in plain files of the state directory so that a
# "reboot" (a new process) finds what was flushed, and loses what was not.
import os


class MemStore:
    def __init__(self, path):
        self.path = path
        self.ram = []  # appended, not yet flushed
        self.cursors = {}
        self.next = 1  # seqs start at 1, as in firmware/store
        for r in self.readings_from(0):
            self.next = r[0] + 1
        self.fseq = self.next - 1
        try:
            with open(path + ".cur") as f:
                for line in f:
                    k, v = line.split("=")
                    self.cursors[k] = int(v)
        except OSError:
            pass

    def append(self, utc, dem, dl, rc, fl):
        s = self.next
        self.ram.append((s, utc, dem, dl, rc, fl))
        self.next = s + 1
        return s

    def flush(self):
        if self.ram:
            with open(self.path + ".log", "a") as f:
                for r in self.ram:
                    f.write(",".join(str(x) for x in r) + "\n")
            self.ram = []
            self.fseq = self.next - 1

    def committed(self):
        return self.fseq

    def readings_from(self, seq):
        # Durable readings only, streamed from the file.
        try:
            f = open(self.path + ".log")
        except OSError:
            return
        with f:
            for line in f:
                i = line.find(",")
                if int(line[:i]) >= seq:
                    yield tuple(int(x) for x in line.split(","))

    def cursor(self, name):
        return self.cursors.get(name, 0)

    def set_cursor(self, name, v):
        self.cursors[name] = v
        tmp = self.path + ".cur.tmp"
        with open(tmp, "w") as f:
            for k in self.cursors:
                f.write("%s=%d\n" % (k, self.cursors[k]))
        os.rename(tmp, self.path + ".cur")
