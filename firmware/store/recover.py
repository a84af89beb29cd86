# Boot recovery of the flash log: find the live sectors and the head, check
# every record, replay the head (delta base and cursors), and make a torn
# head tail safe. Never erases; at most one 1-byte program (a seal).
#
# Which sectors are live: those with a valid header, newest sector_seq first,
# forming a consistent chain (unique sector seqs within one ring's worth,
# first reading seqs not increasing going back). A header that fails the
# chain (garbage, a stale generation) is ignored and erased before re-use.
# A live chain with a hole (sector seqs and reading seqs both skip) lost a
# sector in its middle, header and all: that is counted as damage (S01).
# Torn versus damaged: a torn write leaves only blank flash after it, so a
# bad record followed by blank flash at the head is a power cut (not
# counted); anything else is damage (counted, sector quarantined).
# Exception to "never erases": a header claiming an absurd sequence number
# (crafted or garbage data with a valid CRC) is erased at once.
from store import codec
from store.layout import (
    ABSURD,
    BLANK,
    LIVE,
    RH,
    RT,
    SECTOR,
    T_CUR,
    T_READ,
    T_READC,
    T_SEAL,
    UNKNOWN,
    parse_cursors,
    parse_trailer,
    record_ok,
)


def boot(log):
    n = log.n
    cands = []
    for s in range(n):
        log.state[s] = UNKNOWN
        if log.header(s):
            if log.sseq[s] >= ABSURD or log.first[s] >= ABSURD:
                # Valid-looking but no real log gets there (2**30 sector
                # opens or readings: centuries). It would outrank every new
                # sector, so it goes now rather than when the ring comes.
                log.erase_now(s)
                continue
            cands.append(s)
            # New sectors must outrank every header on flash, even ones
            # rejected below, or a stale one could win at the next boot.
            if log.sseq[s] > log.top:
                log.top = log.sseq[s]
    cands.sort(key=lambda s: log.sseq[s], reverse=True)
    live = []
    for s in cands:
        if live:
            p = live[-1]
            if log.sseq[live[0]] - log.sseq[s] >= n or log.sseq[s] >= log.sseq[p] or log.first[s] > log.first[p]:
                continue
        live.append(s)
        log.state[s] = LIVE
    live.reverse()
    log.live = live
    if not live:
        return
    for i in range(len(live)):
        _scan(log, live[i], i == len(live) - 1)
    for i in range(len(live) - 1):
        a = live[i]
        b = live[i + 1]
        if log.first[a] + log.cnt[a] > log.first[b]:
            log.cnt[a] = log.first[b] - log.first[a]  # crafted data only
        elif log.sseq[b] - log.sseq[a] > 1 and log.first[a] + log.cnt[a] < log.first[b]:
            # A hole in the middle of the chain: a sector opened between
            # these two is gone (its header damaged) and readings with it.
            # Damage, not reclaim (the ring only erases at the tail): S01.
            log.corrupt += 1
    h = live[-1]
    log.head = h
    log.last_seq = log.first[h] + log.cnt[h] - 1
    # The sector after the head was erased ahead of need before the reboot
    # (unless the cut came first): one 4 KB read saves an erase per boot.
    u = (h + 1) % n
    if log.state[u] == UNKNOWN and log.blank(u, 0):
        log.state[u] = BLANK


def _scan(log, s, is_head):
    if is_head:
        log.header(s, log.fst, log.cursors, log.hnames)
    b = log.vbuf
    mv = memoryview(b)
    off = log.start[s]
    cnt = 0
    seed = log.sseq[s]
    while off + RH + RT <= SECTOR:
        log.read(s, off, mv[:RH])
        t = b[0]
        if t == 0xFF:
            if is_head and not log.blank(s, off):
                log.seal(s, off)
            break
        if t == T_SEAL:
            if is_head:
                log.full = True
            break
        ln = b[1] | (b[2] << 8)
        fits = off + RH + ln + RT <= SECTOR and ln <= len(b) - RH - RT
        ok = fits and (t == T_READ or t == T_READC or t == T_CUR)
        if ok:
            log.read(s, off + RH, mv[RH : RH + ln + RT])
            ok = record_ok(b, ln, seed)
        if ok and is_head:
            ok = _apply(log, s, t, b, ln)
        if not ok:
            if not is_head or not log.blank(s, off + RH + (ln + RT if fits else 0)):
                log.corrupt += 1
                log.damaged[s] = 1
            if is_head:
                log.seal(s, off)
            break
        if t != T_CUR:
            cnt += b[3]
        off += RH + ln + RT
    log.end[s] = off
    log.cnt[s] = cnt


def _apply(log, s, t, b, ln):
    # Replay a head record; False if its content is malformed (it passed the
    # CRC, so crafted data only) and then nothing of it is applied.
    end = RH + ln
    got = {}
    if t != T_CUR:
        st = log.fst
        keep = codec.new_state()
        codec.copy_state(keep, st)
        p = RH
        try:
            for _ in range(b[3]):
                p = codec.decode(b, p, end, st)
        except codec.CodecError:
            p = -1
        if t == T_READ:
            ok = p == end
        else:
            ok = p >= 0 and parse_trailer(b, p, end, log.hnames, log.first[s], got)
        if not ok:
            codec.copy_state(st, keep)
            return False
        log.cursors.update(got)
        return True
    if not parse_cursors(b, RH, end, b[3], got):
        return False
    log.cursors.update(got)
    return True
