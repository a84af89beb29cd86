# Persistent device configuration: where it lives, what is valid, and why not.
#
# One small JSON file on the device filesystem (/config.json on the ESP32's
# "vfs" partition; <IHD_STATE>/config.json on the Unix board), written by
# ihd provision after it has run this very validator on the Unix port.
# Fields (docs/config.md has the full table):
#   format          1
#   device_id       1 .. 2**32-1, as registered with the collector
#   key_id          0 .. 65535, which of the device's keys `key` is
#   key             64 hex digits: the 32-byte per-device uplink key
#   endpoints       1..4 "host:port" collector endpoints, in failover order
#   wifi_ssid       1..32 bytes; wifi_key: "" (open), 8..63 chars or 64 hex
#   meter_protocol  "ezsp" or "raven"
#   install_code    hex, 8/10/14/18 bytes incl. CRC-16/X-25 (required: ezsp)
#   ota_keys        1..3 trusted OTA key digests, 64 hex digits each
#   utc_offset_min  optional, -720..840: local time's offset from UTC in
#                   minutes (no DST) when the meter gives no time zone
#   nat_timeout_s   optional, 30..600 (default 60): idle timeout of the home
#                   router's UDP mappings; sets the uplink keep-alive
# Validation collects every problem with the field name, so the display and
# the provisioning tool can say exactly what is wrong, not just "bad config".
# Any bytes at all may be in the file (flash damage, a bad tool): load()
# raises ConfigError for every one of them, never anything else, and bounds
# what parsing can cost before it starts: the file's size from os.stat()
# (MAX_BYTES), then its nesting and item count (json_shape()), then UTF-8.
import binascii
import json
import os

FORMAT = 1
FILE = "config.json"
PROTOCOLS = ("ezsp", "raven")
_INSTALL_CODE_LENS = (8, 10, 14, 18)
_OPTIONAL = ("install_code", "nat_timeout_s", "utc_offset_min")
NAT_TIMEOUT_S = 60  # a common home-router UDP idle timeout (docs/uplink.md)
# Parse bounds. The largest valid config (4 endpoints of 253-character hosts,
# an SSID of 32 escaped non-ASCII characters, 3 OTA keys, indented) is about
# 2.2 KB, at most 2 containers deep (the object, its lists) with ~20 commas.
MAX_BYTES = 4096
MAX_DEPTH = 4
MAX_ITEMS = 48
_REPR = 40  # longest value quoted in an error message


class ConfigError(Exception):
    # errors: list of "field: reason" strings, all that were found.
    def __init__(self, errors):
        super().__init__("; ".join(errors))
        self.errors = errors


class ConfigMissing(ConfigError):
    pass


class Config:
    # A validated configuration; `source` says where it came from.
    def __init__(self, d, source):
        self.source = source
        self.device_id = d["device_id"]
        self.key_id = d["key_id"]
        self.key = binascii.unhexlify(d["key"])
        self.endpoints = [split_endpoint(e) for e in d["endpoints"]]
        self.wifi_ssid = d["wifi_ssid"]
        self.wifi_key = d["wifi_key"]
        self.meter_protocol = d["meter_protocol"]
        ic = d.get("install_code")
        self.install_code = binascii.unhexlify(ic) if ic else None
        self.ota_keys = [binascii.unhexlify(k) for k in d["ota_keys"]]
        self.nat_timeout_s = d.get("nat_timeout_s", NAT_TIMEOUT_S)
        self.utc_offset_min = d.get("utc_offset_min")  # None: the meter's zone, else UTC


def default_path():
    # The Unix HAL keeps device state in a directory; the ESP32 in its VFS.
    import hal

    sd = getattr(hal, "state_dir", None)
    return (sd() if sd else "") + "/" + FILE


def crc_x25(data):
    # CRC-16/X-25 (reflected 0x1021, init and xorout 0xFFFF), the install
    # code checksum; stored little-endian after the code.
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def split_endpoint(s):
    # "host:port" -> (host, port); callers have validated s.
    i = s.rfind(":")
    return s[:i], int(s[i + 1 :])


def json_shape(b, max_depth, max_items):
    # Bytes of JSON text -> None, or why parsing them could cost more than
    # their size: containers nested deeper than max_depth, or more than
    # max_items commas (values) outside strings. One pass, no allocation.
    depth = 0
    items = 0
    instr = False
    esc = False
    for c in b:
        if instr:
            if esc:
                esc = False
            elif c == 0x5C:  # backslash
                esc = True
            elif c == 0x22:
                instr = False
        elif c == 0x22:
            instr = True
        elif c == 0x5B or c == 0x7B:  # [ {
            depth += 1
            if depth > max_depth:
                return "nested deeper than %d" % max_depth
        elif c == 0x5D or c == 0x7D:
            depth -= 1
        elif c == 0x2C:
            items += 1
            if items > max_items:
                return "more than %d items" % max_items
    return None


def _r(v):
    # repr for an error message, shortened: a damaged file may hold a
    # 4 KB string where a port number should be.
    r = repr(v)
    return r if len(r) <= _REPR else r[: _REPR - 3] + "..."


def _hex(errors, name, v, nbytes=None, lens=None):
    if not isinstance(v, str):
        errors.append("%s: expected a hex string" % name)
        return None
    try:
        b = binascii.unhexlify(v)
    except ValueError:
        errors.append("%s: not hex (odd length or a non-hex digit)" % name)
        return None
    if nbytes is not None and len(b) != nbytes:
        errors.append("%s: expected %d hex digits, got %d" % (name, 2 * nbytes, len(v)))
        return None
    if lens is not None and len(b) not in lens:
        errors.append("%s: expected 16, 20, 28 or 36 hex digits, got %d" % (name, len(v)))
        return None
    return b


def _int(errors, name, v, lo, hi):
    if not isinstance(v, int) or isinstance(v, bool):
        errors.append("%s: expected an integer" % name)
    elif not lo <= v <= hi:
        errors.append("%s: %s out of range %d..%d" % (name, _r(v), lo, hi))


def _endpoint_error(s):
    if not isinstance(s, str):
        return 'expected a "host:port" string'
    i = s.rfind(":")
    if i <= 0:
        return "%s has no host:port" % _r(s)
    host, port = s[:i], s[i + 1 :]
    if not port.isdigit() or len(port) > 5 or not 1 <= int(port) <= 65535:
        return "%s: port must be 1..65535" % _r(s)
    if len(host) > 253 or " " in host:
        return "%s: bad host name" % _r(s)
    return None


def validate(d):
    # -> list of "field: reason" errors; empty when `d` is a valid config.
    if not isinstance(d, dict):
        return ["config: expected a JSON object"]
    errors = []
    known = (
        "format",
        "device_id",
        "key_id",
        "key",
        "endpoints",
        "wifi_ssid",
        "wifi_key",
        "meter_protocol",
        "install_code",
        "ota_keys",
        "nat_timeout_s",
        "utc_offset_min",
    )
    for k in known:
        if k not in d and k not in _OPTIONAL:
            errors.append("%s: missing" % k)
    for k in d:
        if k not in known:
            errors.append("%s: unknown field" % (k if len(k) <= _REPR else k[: _REPR - 3] + "..."))
    # Every present field is checked too, so one run of `ihd provision
    # check` lists every problem, not only the missing and unknown ones.
    if "format" in d and d["format"] != FORMAT:
        errors.append("format: %s is not %d (provisioned by a newer tool?)" % (_r(d["format"]), FORMAT))
    if "device_id" in d:
        _int(errors, "device_id", d["device_id"], 1, 0xFFFFFFFF)
    if "key_id" in d:
        _int(errors, "key_id", d["key_id"], 0, 0xFFFF)
    if "key" in d:
        _hex(errors, "key", d["key"], nbytes=32)
    eps = d.get("endpoints", ())
    if "endpoints" not in d:
        pass
    elif not isinstance(eps, list) or not 1 <= len(eps) <= 4:
        errors.append('endpoints: expected a list of 1 to 4 "host:port" strings')
    else:
        for i, e in enumerate(eps):
            why = _endpoint_error(e)
            if why:
                errors.append("endpoints[%d]: %s" % (i, why))
    ssid, wkey = d.get("wifi_ssid", "-"), d.get("wifi_key", "")
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode()) <= 32:
        errors.append("wifi_ssid: expected 1 to 32 bytes of text")
    if not isinstance(wkey, str):
        errors.append("wifi_key: expected text")
    elif len(wkey) == 64:
        _hex(errors, "wifi_key", wkey)
    elif wkey and not 8 <= len(wkey) <= 63:
        errors.append("wifi_key: a WPA passphrase has 8 to 63 characters (or 64 hex digits), got %d" % len(wkey))
    proto = d.get("meter_protocol")
    if "meter_protocol" in d and proto not in PROTOCOLS:
        errors.append("meter_protocol: %s is not one of ezsp, raven" % _r(proto))
    ic = d.get("install_code")
    if ic is None or ic == "":
        if proto == "ezsp":
            errors.append("install_code: required to join the meter over ezsp")
    else:
        b = _hex(errors, "install_code", ic, lens=_INSTALL_CODE_LENS)
        if b is not None:
            want = crc_x25(b[:-2])
            got = b[-2] | (b[-1] << 8)
            if want != got:
                errors.append("install_code: CRC is %04x, the code's digits give %04x (typo?)" % (got, want))
    if "nat_timeout_s" in d:
        _int(errors, "nat_timeout_s", d["nat_timeout_s"], 30, 600)
    if "utc_offset_min" in d:
        _int(errors, "utc_offset_min", d["utc_offset_min"], -720, 840)
    keys = d.get("ota_keys", ())
    if "ota_keys" not in d:
        pass
    elif not isinstance(keys, list) or not 1 <= len(keys) <= 3:
        errors.append("ota_keys: expected a list of 1 to 3 key digests")
    else:
        for i, k in enumerate(keys):
            _hex(errors, "ota_keys[%d]" % i, k, nbytes=32)
    return errors


def parse(text, source="file"):
    # JSON text (str or bytes) -> Config; ConfigError with every problem found.
    b = text.encode() if isinstance(text, str) else text
    if len(b) > MAX_BYTES:
        raise ConfigError(["config: %d bytes, at most %d (damaged file)" % (len(b), MAX_BYTES)])
    why = json_shape(b, MAX_DEPTH, MAX_ITEMS)
    if why:
        raise ConfigError(["config: not a configuration: %s (damaged file)" % why])
    try:
        text = str(b, "utf-8")
    except UnicodeError:
        raise ConfigError(["config: not UTF-8 text (damaged file)"])
    b = None
    try:
        d = json.loads(text)
    except ValueError:
        raise ConfigError(["config: not valid JSON (damaged or truncated file)"])
    text = None
    errors = validate(d)
    if errors:
        raise ConfigError(errors)
    return Config(d, source)


def load(path=None, defaults=None):
    # The configuration in `path` (default: default_path()). A missing file
    # falls back to `defaults` (a dict: the Unix board's embedded config) or
    # raises ConfigMissing. Whatever the file holds, the only exception is
    # ConfigError: its size is checked before a byte is read.
    path = path or default_path()
    try:
        size = os.stat(path)[6]
    except OSError:
        if defaults is None:
            raise ConfigMissing(["config: no %s: run ihd provision" % path])
        errors = validate(defaults)
        if errors:
            raise ConfigError(["board defaults: " + e for e in errors])
        return Config(defaults, "board defaults")
    if size > MAX_BYTES:
        raise ConfigError(["config: %d bytes, at most %d (damaged file)" % (size, MAX_BYTES)])
    try:
        with open(path, "rb") as f:
            b = f.read(size + 1)  # no more than stat() said (+1: it grew)
    except OSError as e:
        raise ConfigError(["config: %s cannot be read (%s)" % (path, e)])
    return parse(b, path)
