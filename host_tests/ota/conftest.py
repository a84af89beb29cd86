"""OTA test fixtures: signing keys and signed images, made once per session
with espsecure and esptool through ihd ota."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import tool  # noqa: E402


class Keys:
    def __init__(self, d: Path):
        self.dir = d
        self.trusted = d / "trusted.pem"
        self.other = d / "other.pem"
        self.e3 = d / "e3.pem"
        tool.keygen(self.trusted)
        tool.keygen(self.other)
        # espsecure only generates e=65537 keys; it signs with any RSA-3072 key.
        k = rsa.generate_private_key(public_exponent=3, key_size=3072)
        self.e3.write_bytes(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        self.digest = {p: tool.key_digest(p).hex() for p in (self.trusted, self.other, self.e3)}

    def sign(self, image: bytes, *keys: Path) -> bytes:
        src = self.dir / "unsigned.bin"
        out = self.dir / "signed.bin"
        src.write_bytes(image)
        tool.sign(list(keys) or [self.trusted], src, out)
        return out.read_bytes()


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> Keys:
    return Keys(tmp_path_factory.mktemp("otakeys"))


@pytest.fixture(scope="session")
def image() -> bytes:
    # Not a multiple of 4 KB, so espsecure pads it before the signature.
    img = tool.make_image(size=100_000, version="2.0.0", secure_version=3)
    assert len(img) % 4096
    return img


@pytest.fixture(scope="session")
def signed(keys, image) -> bytes:
    return keys.sign(image)
