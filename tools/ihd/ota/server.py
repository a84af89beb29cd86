"""HTTP server with single-range requests for OTA downloads (`ihd ota serve`).

Owns only serving: GET/HEAD of image files under a root folder, Range and
If-Range, ETag, and the fault hook tests use to cut or stall a download.
"""

from __future__ import annotations

import hashlib
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class OtaHandler(BaseHTTPRequestHandler):
    """GET/HEAD of files under server.root, with single-range requests
    ("bytes=a-b", "bytes=a-"), ETag and If-Range. server.fault, if set, is
    called as fault(path, start, end) -> bytes to send before dropping the
    connection, or (bytes, seconds) to stall that long before dropping it
    (None: send everything): how tests cut connections."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet unless asked
        if getattr(self.server, "verbose", False):
            sys.stderr.write("ota serve: " + fmt % args + "\n")

    def _file(self) -> Path | None:
        name = self.path.split("?")[0].lstrip("/")
        p = (Path(self.server.root) / name).resolve()
        if Path(self.server.root).resolve() not in p.parents or not p.is_file():
            return None
        return p

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool):
        p = self._file()
        if p is None:
            self.server.requests.append((self.path, self.headers.get("Range"), 404))
            self.send_error(404, "no such image")
            return
        data = p.read_bytes()
        total = len(data)
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:16]
        start, end, status = 0, total - 1, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and self.server.ranges and (if_range is None or if_range == etag):
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m or int(m.group(1)) >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(m.group(1))
            end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
            status = 206
        self.server.requests.append((self.path, rng, status))
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if not body:
            return
        fault = getattr(self.server, "fault", None)
        cut = fault(self.path, start, end + 1) if fault else None
        stall = 0.0
        if isinstance(cut, tuple):
            cut, stall = cut
        payload = memoryview(data)[start : end + 1]
        if cut is not None:
            payload = payload[:cut]
        try:
            for i in range(0, len(payload), 16384):
                self.wfile.write(payload[i : i + 16384])
                self.server.sent += len(payload[i : i + 16384])
            self.wfile.flush()
        except ConnectionError:
            self.close_connection = True  # the client gave up (e.g. refused the image)
            return
        if cut is not None:
            time.sleep(stall)  # a stalled peer: the client must time out
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


def make_server(root: Path, port: int = 0, host: str = "127.0.0.1", fault=None) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer((host, port), OtaHandler)
    srv.daemon_threads = True
    srv.root = str(root)
    srv.fault = fault
    srv.requests = []  # (path, Range header, status) per request
    srv.sent = 0  # body bytes written
    srv.ranges = True  # False: ignore Range (a server without range support)
    return srv


def serve_in_thread(root: Path, fault=None) -> ThreadingHTTPServer:
    """For tests and the simulator: start a server on a free port."""
    srv = make_server(root, fault=fault)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
