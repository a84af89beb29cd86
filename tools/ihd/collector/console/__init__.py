"""Support console: a web page over the collector's SQLite database for a
support desk (docs/console.md).

    ihd collector console --db collector.sqlite [--port 8470] [--host 127.0.0.1]   (python -m ihd.collector.console)

Fleet page: every device, its last contact, firmware, current fault and its
sentence, sortable and filterable by fault. Device page: consumption chart
(day / week), live readings while real-time mode is on, health history,
commands, and buttons that queue real-time mode or an OTA update exactly as the
collector and OTA command lines do. Operator access: a token (file, 0600),
exchanged at the login form for a signed session cookie; every POST carries a
CSRF token. Reads go through console/data.py, writes through console/actions.py.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import sys
import time
from pathlib import Path

from . import actions, chart, data

DEFAULT_PORT = 8470
DEFAULT_TOKEN_FILE = Path.home() / ".config" / "ihd" / "console-token"
REALTIME_CHOICES = (60, 300, 600, 1800, 3600)


class ConsoleError(Exception):
    """A user mistake or an unusable environment: one line, non-zero exit."""


# -- the operator token ---------------------------------------------------------
def load_or_create_token(path: Path) -> tuple[str, bool]:
    """(token, created): read the operator token, or create it (0600, its folder
    0700) on first start."""
    path = Path(path)
    try:
        if path.exists():
            if path.is_dir():
                raise ConsoleError(f"token file {path} is a folder: give --token-file a file name")
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise ConsoleError(f"token file {path} is readable by others (mode {mode:o}): chmod 600 {path}")
            token = path.read_text().strip()
            if len(token) < 16:
                raise ConsoleError(f"token file {path} holds no token (16+ characters): delete it to make a new one")
            return token, False
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token, True
    except OSError as e:
        raise ConsoleError(f"token file {path}: {e.strerror or e}")


# -- the app ------------------------------------------------------------------------
def make_app(db_path: str | Path, auth: str, ota_dir: str | Path | None = None, ota_url: str | None = None):
    """The Flask app over one collector database; `auth` is the operator token."""
    from flask import Flask, abort, flash, g, jsonify, redirect, render_template, request, session, url_for
    from markupsafe import Markup

    db_path = Path(db_path)
    app = Flask(__name__)
    # Sessions are signed with a key derived from the token: a new token logs everyone out.
    app.secret_key = hmac.new(auth.encode(), b"ihd-console-session", hashlib.sha256).digest()
    app.config.update(
        SESSION_COOKIE_NAME="ihd_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    operator = hashlib.sha256(b"operator:" + auth.encode()).hexdigest()[:32]
    cmd_names = actions.command_names()

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(24)
        return session["csrf"]

    @app.context_processor
    def _ctx():
        return {
            "csrf_token": csrf_token,
            "ago": data.ago,
            "utc": _utc,
            "dash": data.DASH,
            "cmd_name": lambda k: cmd_names.get(k, f"kind {k}"),
            "db_name": db_path.name,
        }

    @app.before_request
    def _guard():
        if request.endpoint == "static":
            return None
        if request.method == "POST":
            sent = request.form.get("csrf", "")
            if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
                abort(400, "CSRF token missing or wrong: reload the page and try again.")
        if request.endpoint != "login" and session.get("op") != operator:
            if request.path.endswith(".json"):
                abort(401)
            return redirect(url_for("login", next=request.full_path if request.query_string else request.path))
        return None

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self'; img-src 'self' data:",
        )
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    def db():
        if "db" not in g:
            try:
                g.db = data.connect(db_path)
            except data.DataError as e:
                abort(503, str(e))
        return g.db

    @app.teardown_appcontext
    def _close(_exc):
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @app.errorhandler(400)
    @app.errorhandler(401)
    @app.errorhandler(404)
    @app.errorhandler(503)
    def _error(e):
        return render_template("error.html", code=e.code, message=e.description), e.code

    @app.route("/login", methods=["GET", "POST"])
    def login():
        nxt = request.args.get("next") or "/"
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        if request.method == "POST":
            if hmac.compare_digest(request.form.get("token", "").strip().encode(), auth.encode()):
                session.clear()
                session.permanent = True
                session["op"] = operator
                return redirect(nxt)
            time.sleep(0.5)  # slows guessing; the token has 192 bits anyway
            flash("Wrong token: it is in the token file the console printed at its first start.", "error")
        return render_template("login.html", next=nxt)

    @app.route("/logout", methods=["POST"])
    def logout():
        session.clear()
        return redirect(url_for("login"))

    @app.route("/")
    def fleet():
        rows = data.fleet(db())
        codes = sorted({c for r in rows for c, _s in (r["health"]["fault_list"] or [])}, key=_fault_order)
        fault = request.args.get("fault", "")
        sort = request.args.get("sort", "device")
        if sort not in data.SORT_KEYS:
            sort = "device"
        desc = request.args.get("dir") == "desc"
        shown = data.sort_fleet(data.filter_fleet(rows, fault), sort, desc)
        return render_template(
            "fleet.html",
            rows=shown,
            total=len(rows),
            fault=fault,
            fault_choices=_fault_choices(codes),
            sort=sort,
            desc=desc,
            has_health=data.has_health(db()),
        )

    @app.route("/device/<int:device_id>")
    def device(device_id: int):
        conn = db()
        dev = data.device(conn, device_id)
        if dev is None:
            abort(404, f"No device {device_id} in {db_path.name}.")
        rng = request.args.get("range", "day")
        if rng not in data.RANGES:
            rng = "day"
        span = data.reading_span(conn, device_id)
        t1 = (span[1] + 1) if span else int(time.time())
        t1 = t1 - t1 % 3600 + 3600  # whole hours: the energy bars line up
        t0 = t1 - data.RANGES[rng]
        demand = data.demand_series(conn, device_id, t0, t1)
        energy = data.energy_per_hour(conn, device_id, t0, t1)
        pending, done = data.commands(conn, device_id)
        live = data.live_recent(conn, device_id)
        images = sorted(p.name for p in Path(ota_dir).glob("*.bin")) if ota_dir else []
        return render_template(
            "device.html",
            d=dev,
            h=dev["health"],
            rng=rng,
            t0=t0,
            t1=t1,
            svg=Markup(chart.consumption_svg(demand, energy, t0, t1)),
            n_demand=len(demand),
            energy_total=sum(wh for _h, wh in energy),
            history=data.health_history(conn, device_id),
            pending=pending,
            done=done,
            live=live,
            live_state=_live_state(conn, device_id, pending, done),
            realtime_choices=REALTIME_CHOICES,
            ota_dir=ota_dir,
            ota_url=ota_url,
            images=images,
        )

    @app.route("/device/<int:device_id>/live.json")
    def live_json(device_id: int):
        conn = db()
        after = request.args.get("after", type=int, default=0)
        pts = data.live_since(conn, device_id, after) if after else data.live_recent(conn, device_id)
        pending, done = data.commands(conn, device_id)
        return jsonify(points=pts, state=_live_state(conn, device_id, pending, done))

    @app.route("/device/<int:device_id>/realtime", methods=["POST"])
    def realtime(device_id: int):
        seconds = request.form.get("seconds", type=int, default=600)
        if seconds not in REALTIME_CHOICES:
            abort(400, f"real-time for {seconds} s: choose one of {REALTIME_CHOICES}")
        try:
            cid = actions.request_realtime(db_path, device_id, seconds)
            flash(f"Command {cid} queued: real-time mode for {seconds} s; sent with the next reply to the device.")
        except actions.ActionError as e:
            flash(f"Not queued: {e}", "error")
        return redirect(url_for("device", device_id=device_id))

    @app.route("/device/<int:device_id>/ota", methods=["POST"])
    def ota(device_id: int):
        name = request.form.get("image", "")
        if not ota_dir or not ota_url:
            flash("Not queued: start the console with --ota-dir and --ota-url to offer updates.", "error")
        elif name not in {p.name for p in Path(ota_dir).glob("*.bin")}:
            flash(f"Not queued: no image {name!r} in the update folder.", "error")
        else:
            url = ota_url.rstrip("/") + "/" + name
            try:
                cid, version = actions.request_update(db_path, device_id, url, Path(ota_dir) / name)
                flash(f"Command {cid} queued: update to {version} from {url}.")
            except actions.ActionError as e:
                flash(f"Not queued: {e}", "error")
        return redirect(url_for("device", device_id=device_id))

    return app


def _utc(t: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return data.DASH if t is None else time.strftime(fmt, time.gmtime(t)) + " UTC"


def _fault_order(code: str) -> int:
    order = {c: i for i, (_n, c, _s) in enumerate(data.fault_table())}
    return order.get(code, len(order))


def _fault_choices(present: list[str]) -> list[tuple[str, str]]:
    """(value, label) of the fault filter: all, OK, no report, then every code in the
    firmware's table (the ones present in the fleet first: they are the useful ones)."""
    table = data.fault_table()
    out = [("", "all devices"), ("OK", "OK: no fault"), (data.DASH, "— no health report")]
    seen = set()
    for c in present:
        seen.add(c)
        sentence = next((s for _n, cc, s in table if cc == c), "unknown code")
        out.append((c, f"{c}: {sentence} (present)"))
    out += [(c, f"{c}: {s}") for _n, c, s in table if c not in seen]
    return out


def _live_state(conn, device_id: int, pending: list[dict], done: list[dict]) -> dict:
    """Real-time mode as the database shows it: "on" while live readings arrive (one in
    the last 30 s), "requested" while a realtime command waits for the device,
    "accepted" while the window of the last one it ran lasts but nothing streams."""
    now = time.time()
    last = data.last_live_received(conn, device_id)
    asked = any(c["kind"] == 1 for c in pending)
    state = {"on": True, "last": data.ago(last, now)}
    if last is not None and now - last < 30:
        return {**state, "text": "on, renewal requested" if asked else "on"}
    if asked:
        return {**state, "text": "requested: waiting for the device"}
    for c in done:  # newest first
        if c["kind"] == 1 and c["status"] == 0 and len(c["payload"]) == 4:
            left = int(c["done"] + int(c["payload"], 16) - now)
            if left > 0:
                return {**state, "text": f"accepted, {left} s left; no live reading in the last 30 s"}
            break
    return {**state, "on": False, "text": "off"}


def serve(db_path: str | Path, host: str, port: int, auth: str, **kw) -> int:
    """Check the database, bind, serve until Ctrl-C. ConsoleError for a user mistake."""
    import errno
    import socket

    from werkzeug.serving import get_sockaddr, make_server, select_address_family

    try:
        data.connect(db_path).close()
        data.fault_table()
    except data.DataError as e:
        raise ConsoleError(str(e))
    app = make_app(db_path, auth, **kw)
    # Bound here, not by werkzeug: its own bind error is two lines and sys.exit(1).
    try:
        family = select_address_family(host, port)
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as e:
        raise ConsoleError(f"cannot listen on {host}:{port}: {e.strerror or e}")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(get_sockaddr(host, port, family))
        sock.listen(128)
        srv = make_server(host, port, app, threaded=True, fd=sock.fileno())
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ConsoleError(f"port {port} on {host} is in use: stop what holds it or give --port another number")
        raise ConsoleError(f"cannot listen on {host}:{port}: {e.strerror or e}")
    finally:
        sock.close()  # the server holds its own duplicate
    shown = f"[{host}]" if ":" in host else host
    print(f"console: http://{shown}:{srv.socket.getsockname()[1]}/ on {db_path} (Ctrl-C stops)", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="console", description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, type=Path, help="the collector's SQLite database (ihd collector --db)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine)")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default: %(default)s; 0: any free)")
    ap.add_argument(
        "--token-file",
        type=Path,
        default=DEFAULT_TOKEN_FILE,
        help="operator token, created 0600 on first start (default: %(default)s)",
    )
    ap.add_argument("--ota-dir", type=Path, help="folder of signed images (*.bin) the OTA button offers")
    ap.add_argument("--ota-url", help="URL where --ota-dir is served to devices (e.g. by `ihd ota serve`)")
    a = ap.parse_args(argv)
    try:
        if a.ota_dir is not None and not a.ota_dir.is_dir():
            raise ConsoleError(f"--ota-dir {a.ota_dir} is not a folder")
        if (a.ota_dir is None) != (a.ota_url is None):
            raise ConsoleError("give --ota-dir and --ota-url together (the images, and where devices fetch them)")
        try:  # before the token: a wrong --db must not create one
            data.connect(a.db).close()
        except data.DataError as e:
            raise ConsoleError(str(e))
        token, created = load_or_create_token(a.token_file)
        if created:
            print(f"console: new operator token (saved 0600 in {a.token_file}; log in with it): {token}", flush=True)
        return serve(a.db, a.host, a.port, token, ota_dir=a.ota_dir, ota_url=a.ota_url)
    except ConsoleError as e:
        print(f"console: {e}", file=sys.stderr)
        return 1
