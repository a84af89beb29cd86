# Resumable HTTP(S) download for OTA images: plain sockets through asyncio
# streams, HTTP/1.1 single-range requests, constant memory.
#
# fetch(url, sink, size) streams the body into sink.write(memoryview) in
# small pieces. When the connection drops, stalls or ends early, it reconnects
# and asks for "Range: bytes=<received>-" with If-Range: <ETag>, so a changed
# file is sent whole (200) and the sink is told to restart; a server without
# Range support (200 to a range request) also restarts the sink. Retries back
# off and are counted only while no progress is made, so any number of drops
# is survived as long as each connection delivers something.
# Pace (device time, the HAL clock): a fetch is abandoned for good when it
# outlasts its deadline, max(floor, size / MIN_AVG_BPS), or when any window of
# WINDOW_MS (judged every half window) brought less than MIN_WINDOW_BPS: a
# server that drips a byte just inside each read timeout cannot hold it.
# TLS (https://) encrypts only: authenticity comes from the image signature.
import asyncio
import gc
import time

from micropython import const

NET_BUF = const(1024)
_MAX_HEADER_LINES = const(32)
_MAX_LINE = const(512)
MIN_AVG_BPS = const(1024)  # overall: size / this is the deadline
MIN_WINDOW_BPS = const(256)  # any window of WINDOW_MS must bring this much
WINDOW_MS = const(300_000)
DEADLINE_FLOOR_MS = const(900_000)


class DownloadError(Exception):
    # args[0]: "<code>: <detail>"; permanent ones are not retried.
    def __init__(self, reason, permanent=False):
        super().__init__(reason)
        self.permanent = permanent


def parse_url(url):
    # -> (tls, host, port, path)
    if url.startswith("http://"):
        tls, rest, port = False, url[7:], 80
    elif url.startswith("https://"):
        tls, rest, port = True, url[8:], 443
    else:
        raise DownloadError("bad-url: only http:// and https://", True)
    i = rest.find("/")
    hostport, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    j = hostport.rfind(":")
    if j >= 0:
        port = int(hostport[j + 1 :])
        hostport = hostport[:j]
    if not hostport:
        raise DownloadError("bad-url: no host", True)
    return tls, hostport, port, path


async def _line(reader, timeout_ms, pace):
    # One header line, at most _MAX_LINE bytes: a hostile or broken peer
    # cannot make us allocate without bound (StreamReader.readline would),
    # nor hold us by dripping it (pace(0) after each byte).
    line = bytearray()
    while True:
        c = await asyncio.wait_for_ms(reader.read(1), timeout_ms)
        pace(0)
        if not c:
            raise OSError("connection closed in headers")
        if c == b"\n":
            return bytes(line).rstrip(b"\r")
        if len(line) >= _MAX_LINE:
            raise OSError("header line too long")
        line.extend(c)


async def _head(reader, timeout_ms, pace):
    # -> (status, {lower-case name: value}) for the headers we use.
    parts = (await _line(reader, timeout_ms, pace)).split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise OSError("bad status line")
    try:
        status = int(parts[1])
    except ValueError:
        raise OSError("bad status code")
    hdrs = {}
    for _ in range(_MAX_HEADER_LINES):
        line = await _line(reader, timeout_ms, pace)
        if not line:
            return status, hdrs
        i = line.find(b":")
        if i > 0:
            name = line[:i].strip().lower()
            if name in (b"content-length", b"content-range", b"etag"):
                try:
                    hdrs[str(name, "ascii")] = str(line[i + 1 :].strip(), "ascii")
                except UnicodeError:
                    raise OSError("non-ASCII header")
    raise OSError("too many header lines")


def _content_range(v):
    # "bytes a-b/total" -> (a, total)
    if not v.startswith("bytes "):
        raise OSError("bad Content-Range")
    try:
        span, total = v[6:].split("/")
        return int(span.split("-")[0]), int(total)
    except ValueError:
        raise OSError("bad Content-Range")


class Fetcher:
    def __init__(
        self,
        url,
        sink,
        size=None,
        timeout_ms=10_000,
        retries=5,
        backoff_ms=500,
        clock=None,
        min_avg_bps=MIN_AVG_BPS,
        min_window_bps=MIN_WINDOW_BPS,
        window_ms=WINDOW_MS,
        deadline_floor_ms=DEADLINE_FLOOR_MS,
        buf=None,
    ):
        self.tls, self.host, self.port, self.path = parse_url(url)
        self.sink = sink  # .write(mv), .restart(), .pos
        self.total = size
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.backoff_ms = backoff_ms
        self.etag = None
        self.connections = 0
        self.restarts = 0
        # buf: a slice of the updater's boot-time arena (ota/updater.py carve())
        self._buf = bytearray(NET_BUF) if buf is None else buf
        self._ssl = None
        if clock is None:
            import hal

            clock = hal.clock
        self.clock = clock
        self.min_avg_bps = min_avg_bps
        self.deadline_floor_ms = deadline_floor_ms
        self.window_ms = window_ms
        self._need = min_window_bps * (window_ms // 1000)  # bytes per window
        self.received = 0  # body bytes, all connections
        # window state, reset by run(): start of the current half window,
        # bytes in the previous and current halves, a whole window seen
        self._t0 = self._w_t = 0
        self._w_prev = self._w_cur = 0
        self._w_full = False

    def pace(self, n):
        # Count n body bytes; raise a permanent DownloadError when the fetch
        # is past its deadline or the last window brought too little.
        # Integers stay small (no long ints on a 32-bit build).
        now = self.clock.ticks_ms()
        self.received += n
        el = time.ticks_diff(now, self._t0)
        total = self.total or 0
        limit = max(self.deadline_floor_ms, total // self.min_avg_bps * 1000)
        if el > limit:
            raise DownloadError(
                "download-deadline: %d of %d bytes in %d s, limit %d s"
                % (self.received, total, el // 1000, limit // 1000),
                True,
            )
        half = self.window_ms // 2
        while time.ticks_diff(now, self._w_t) >= half:
            got = self._w_prev + self._w_cur
            if self._w_full and got < self._need:
                raise DownloadError(
                    "download-too-slow: %d bytes in the last %d s, at least %d required"
                    % (got, self.window_ms // 1000, self._need),
                    True,
                )
            self._w_full = True
            self._w_prev = self._w_cur
            self._w_cur = 0
            self._w_t = time.ticks_add(self._w_t, half)  # type: ignore[type-var]
        self._w_cur += n

    async def run(self):
        failures = 0
        self._t0 = self._w_t = self.clock.ticks_ms()
        self._w_prev = self._w_cur = 0
        self._w_full = False
        while True:
            self.pace(0)
            start = self.sink.pos
            if self.total is not None and start >= self.total:
                return
            try:
                await self._once(start)
            except DownloadError as e:
                if e.permanent:
                    raise
                last = e
            except (OSError, asyncio.TimeoutError) as e:
                last = e
            else:
                last = None
            if self.total is not None and self.sink.pos >= self.total:
                return
            failures = 0 if self.sink.pos > start else failures + 1
            if failures > self.retries:
                raise DownloadError("download-failed: %d attempts without progress (%r)" % (failures, last))
            await asyncio.sleep_ms(self.backoff_ms * min(failures, 8))

    async def _open(self):
        if self.tls and self._ssl is None:
            import ssl

            # One context for all reconnections: TLS state is large.
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self._ssl.verify_mode = ssl.CERT_NONE  # type: ignore[attr-defined]
        gc.collect()  # a connection (and TLS handshake) needs contiguous heap
        conn = asyncio.open_connection(self.host, self.port, ssl=self._ssl)
        return await asyncio.wait_for_ms(conn, self.timeout_ms)

    async def _once(self, start):
        reader, writer = await self._open()
        self.connections += 1
        try:
            req = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ihd-ota\r\nConnection: close\r\n" % (self.path, self.host)
            if start:
                req += "Range: bytes=%d-\r\n" % start
                if self.etag:
                    req += "If-Range: %s\r\n" % self.etag
            writer.write((req + "\r\n").encode())
            await writer.drain()
            status, hdrs = await _head(reader, self.timeout_ms, self.pace)
            if status == 200:
                try:
                    length = int(hdrs.get("content-length", "-1"))
                except ValueError:
                    raise OSError("bad Content-Length")
                if start:
                    # Range ignored, or the file changed (If-Range): start over.
                    self.sink.restart()
                    self.restarts += 1
                self._total(length)
            elif status == 206 and start:
                first, total = _content_range(hdrs.get("content-range", ""))
                if first != start:
                    raise OSError("range starts at %d, asked %d" % (first, start))
                self._total(total)
            elif status == 416:
                raise DownloadError("http-range: server refused range %d-" % start, True)
            else:
                raise DownloadError("http-status: %d" % status, status in (400, 401, 403, 404, 410))
            if "etag" in hdrs:
                self.etag = hdrs["etag"]
            mv = memoryview(self._buf)
            while self.sink.pos < self.total:
                n = await asyncio.wait_for_ms(reader.readinto(self._buf), self.timeout_ms)
                if not n:
                    break  # dropped: the caller resumes with a Range request
                n = min(n, self.total - self.sink.pos)
                self.pace(n)
                self.sink.write(mv[:n])
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    def _total(self, total):
        if total < 0:
            raise DownloadError("http-length: no Content-Length", True)
        if self.total is not None and total != self.total:
            raise DownloadError("size-mismatch: server has %d bytes, command said %d" % (total, self.total), True)
        self.total = total


async def fetch(url, sink, size=None, **kw):
    f = Fetcher(url, sink, size, **kw)
    await f.run()
    return f
