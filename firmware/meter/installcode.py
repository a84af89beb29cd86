# Install code -> preconfigured link key (ZigBee SE / BDB), computed on the
# host so the key is the same whatever the co-processor firmware offers.
#
# An install code is 6, 8, 12 or 16 bytes followed by its CRC-16/X-25
# (little-endian); the link key is its AES-MMO hash (ZigBee spec B.6),
# the Matyas-Meyer-Oseas construction over AES-128 with the spec's
# padding: a 1 bit, zeros, then the message length in bits (16 bits).
# zigpy.util.convert_install_code is the host-test oracle.
import cryptolib

_SIZES = (8, 10, 14, 18)


def crc_x25(data, n):
    # CRC-16/X-25: reflected poly 0x1021 (0x8408), init and xorout 0xFFFF.
    crc = 0xFFFF
    for i in range(n):
        crc ^= data[i]
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def _block(h, m):
    # One MMO step: E_h(m) XOR m.
    c = bytearray(cryptolib.aes(bytes(h), 1).encrypt(bytes(m)))
    for i in range(16):
        c[i] ^= m[i]
    return c


def mmo_hash(data):
    n = len(data)
    h = bytearray(16)
    full = n - n % 16
    for i in range(0, full, 16):
        h = _block(h, data[i : i + 16])
    tail = bytearray(16)
    rem = n - full
    tail[0:rem] = data[full:]
    tail[rem] = 0x80
    if rem > 13:  # no room left for the 16-bit length: one more block
        h = _block(h, tail)
        tail = bytearray(16)
    bits = n * 8
    tail[14] = (bits >> 8) & 0xFF
    tail[15] = bits & 0xFF
    return bytes(_block(h, tail))


def link_key(code):
    # Link key (16 bytes) for an install code given as bytes or hex text
    # (spaces and dashes allowed); ValueError with the reason if invalid.
    if isinstance(code, str):
        code = bytes.fromhex(code.replace(" ", "").replace("-", "").replace(":", ""))
    n = len(code)
    if n not in _SIZES:
        raise ValueError("install code must be 8, 10, 14 or 18 bytes with its CRC, got %d" % n)
    crc = crc_x25(code, n - 2)
    if code[n - 2] != crc & 0xFF or code[n - 1] != crc >> 8:
        raise ValueError("install code CRC mismatch: expected %04x" % crc)
    return mmo_hash(code)
