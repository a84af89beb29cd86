# The "ota" uplink command (kind 2, uplink/datagram.py CMD_OTA): its payload
# layout and the DONE status codes the device answers with.
#
# Payload, big-endian as the rest of the wire format (docs/ota.md):
#   u8   format = 1 (the file is an app image) or 2 (a signed key list,
#        ota/keylist.py; same fields, "kind": "keylist")
#   u32  size of the signed image file in bytes
#   32   SHA-256 of that file
#   u32  secure_version of the image (informational: the image decides)
#   u8   n, then n bytes: version string (UTF-8, n <= 32)
#   u16  m, then m bytes: URL, http:// or https:// (UTF-8)
# The command is authenticated by the uplink (HMAC under the device key);
# the image is trusted only for its own Secure Boot V2 signature.
import binascii
import struct

from micropython import const

FORMAT = const(1)
FORMAT_KEYLIST = const(2)
MAX_SIZE = const(0x1F0000)  # an OTA slot

# DONE status for CMD_OTA (0: accepted, 1 and 255 are the uplink's own)
ST_ACCEPTED = const(0)
ST_BAD_PAYLOAD = const(2)
ST_BUSY = const(3)


class CommandError(ValueError):
    pass


def parse(payload):
    # -> {"url", "size", "sha256" (hex), "secure_version", "version"}
    b = bytes(payload)
    if len(b) < 44 or b[0] not in (FORMAT, FORMAT_KEYLIST):
        raise CommandError("bad-command: format or length")
    size, sha, sv, vn = struct.unpack_from(">I32sIB", b, 1)
    i = 42 + vn
    if vn > 32 or len(b) < i + 2:
        raise CommandError("bad-command: version field")
    version = str(b[42:i], "utf-8")
    (un,) = struct.unpack_from(">H", b, i)
    if len(b) != i + 2 + un:
        raise CommandError("bad-command: url length")
    url = str(b[i + 2 :], "utf-8")
    if not (url.startswith("http://") or url.startswith("https://")):
        raise CommandError("bad-command: url scheme")
    if not 0 < size <= MAX_SIZE or size % 4096:
        raise CommandError("bad-command: size")
    sha = binascii.hexlify(sha).decode()
    cmd = {"url": url, "size": size, "sha256": sha, "secure_version": sv, "version": version}
    if b[0] == FORMAT_KEYLIST:
        cmd["kind"] = "keylist"
    return cmd
