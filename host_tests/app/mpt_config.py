# app/config.py on MicroPython: loading, board defaults, precise errors.
import json

import board
import hal
from app import config

HEAP = "128k"

GOOD = {
    "format": 1,
    "device_id": 4097,
    "key_id": 2,
    "key": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "endpoints": ["ihd.example.net:4700", "192.0.2.7:4701"],
    "wifi_ssid": "Home",
    "wifi_key": "correct horse",
    "meter_protocol": "ezsp",
    "install_code": "83FED3407A939723A5C639B26916D505C3B5",
    "ota_keys": ["c1856af356633dfd5fcd4e6a3bf9af9e9a38001580664cec026eee25b19f2a2c"],
}


def _path():
    return hal.state_dir() + "/config.json"


def _write(d_or_text):
    with open(_path(), "w") as f:
        f.write(d_or_text if isinstance(d_or_text, str) else json.dumps(d_or_text))


def _errors(**changes):
    d = dict(GOOD)
    for k, v in changes.items():
        if v is None:
            del d[k]
        else:
            d[k] = v
    return config.validate(d)


def test_valid_file_loads_with_typed_fields():
    _write(GOOD)
    c = config.load()
    assert c.source == _path()
    assert c.device_id == 4097 and c.key_id == 2
    assert c.key == bytes(range(0, 256, 17)) * 2
    assert c.endpoints == [("ihd.example.net", 4700), ("192.0.2.7", 4701)]
    assert c.meter_protocol == "ezsp"
    assert len(c.install_code) == 18
    assert c.ota_keys[0][:2] == b"\xc1\x85"
    assert c.nat_timeout_s == 60  # optional: the common home-router timeout


def test_nat_timeout_is_optional_and_bounded():
    _write(dict(GOOD, nat_timeout_s=300))
    assert config.load().nat_timeout_s == 300


def test_utc_offset_is_optional_and_bounded():
    _write(GOOD)
    assert config.load().utc_offset_min is None  # the meter's time zone, else UTC
    _write(dict(GOOD, utc_offset_min=-300))
    assert config.load().utc_offset_min == -300
    for bad, why in ((841, "841 out of range -720..840"), ("60", "expected an integer")):
        _write(dict(GOOD, utc_offset_min=bad))
        try:
            config.load()
        except config.ConfigError as e:
            assert e.errors == ["utc_offset_min: " + why], e.errors
        else:
            raise AssertionError("accepted utc_offset_min %r" % (bad,))


def test_missing_file_is_config_missing_without_defaults():
    try:
        config.load()
        assert False, "loaded a config that does not exist"
    except config.ConfigMissing as e:
        assert "provision" in e.errors[0]


def test_missing_file_uses_unix_board_defaults():
    c = config.load(defaults=board.DEFAULT_CONFIG)
    assert c.source == "board defaults"
    assert c.key == b"SIM ONLY- not a real device key!"


def test_bad_board_defaults_are_reported_as_such():
    d = dict(board.DEFAULT_CONFIG)
    d["key_id"] = -1
    try:
        config.load(defaults=d)
        assert False
    except config.ConfigError as e:
        assert not isinstance(e, config.ConfigMissing)
        assert e.errors == ["board defaults: key_id: -1 out of range 0..65535"]


def test_truncated_file_is_bad_not_missing():
    text = json.dumps(GOOD)
    _write(text[: len(text) // 2])
    try:
        config.load()
        assert False
    except config.ConfigMissing:
        assert False, "damaged file reported as missing"
    except config.ConfigError as e:
        assert e.errors == ["config: not valid JSON (damaged or truncated file)"]


def test_every_field_error_is_named():
    cases = (
        ({"device_id": 0}, "device_id: 0 out of range 1..4294967295"),
        ({"device_id": True}, "device_id: expected an integer"),
        ({"key_id": 65536}, "key_id: 65536 out of range 0..65535"),
        ({"key": "00" * 31}, "key: expected 64 hex digits, got 62"),
        ({"key": "zz" * 32}, "key: not hex (odd length or a non-hex digit)"),
        ({"endpoints": []}, 'endpoints: expected a list of 1 to 4 "host:port" strings'),
        ({"endpoints": ["a:1"] * 5}, 'endpoints: expected a list of 1 to 4 "host:port" strings'),
        ({"endpoints": ["ok:1", "host"]}, "endpoints[1]: 'host' has no host:port"),
        ({"endpoints": ["host:0"]}, "endpoints[0]: 'host:0': port must be 1..65535"),
        ({"endpoints": ["host:http"]}, "endpoints[0]: 'host:http': port must be 1..65535"),
        ({"wifi_ssid": "x" * 33}, "wifi_ssid: expected 1 to 32 bytes of text"),
        ({"wifi_key": "1234567"}, "wifi_key: a WPA passphrase has 8 to 63 characters (or 64 hex digits), got 7"),
        ({"wifi_key": "g" * 64}, "wifi_key: not hex (odd length or a non-hex digit)"),
        ({"meter_protocol": "zigbee"}, "meter_protocol: 'zigbee' is not one of ezsp, raven"),
        ({"install_code": None}, "install_code: required to join the meter over ezsp"),
        (
            {"install_code": "83FED3407A939723A5C639B26916D505C3B4"},
            "install_code: CRC is b4c3, the code's digits give b5c3 (typo?)",
        ),
        ({"install_code": "0011"}, "install_code: expected 16, 20, 28 or 36 hex digits, got 4"),
        ({"ota_keys": []}, "ota_keys: expected a list of 1 to 3 key digests"),
        ({"ota_keys": ["00" * 32, "11" * 31]}, "ota_keys[1]: expected 64 hex digits, got 62"),
        ({"format": 2}, "format: 2 is not 1 (provisioned by a newer tool?)"),
        ({"colour": "red"}, "colour: unknown field"),
        ({"nat_timeout_s": 29}, "nat_timeout_s: 29 out of range 30..600"),
        ({"nat_timeout_s": "60"}, "nat_timeout_s: expected an integer"),
        ({"wifi_ssid": None}, "wifi_ssid: missing"),
    )
    for change, want in cases:
        got = _errors(**change)
        assert got == [want], "%r: got %r" % (change, got)


def test_several_errors_are_all_reported():
    got = _errors(device_id=0, key="ab", meter_protocol="x")
    assert len(got) == 3, got


def test_raven_needs_no_install_code_and_open_wifi_is_allowed():
    assert _errors(meter_protocol="raven", install_code=None, wifi_key="") == []


def test_not_an_object():
    _write("[1, 2]")
    try:
        config.load()
        assert False
    except config.ConfigError as e:
        assert e.errors == ["config: expected a JSON object"]
