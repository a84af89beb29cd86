# The ESP32 port's `network` module, station interface only
# (ports/esp32/network_wlan.c): WLAN(IF_STA) with active(), connect(),
# disconnect(), isconnected(), status() / status("rssi"), config().
# The emulated access point is always in range: connect() on an active
# interface associates at once. IHD_WIFI="down" starts with no access point
# in range (connect() then leaves status() at STAT_NO_AP_FOUND);
# IHD_WIFI="rssi=-70" sets the signal. Tests change it in-process with
# ap(up, rssi) (the AP leaves: the station is disconnected; it comes back:
# the station reconnects, as the driver's auto-reconnect does).
# Deviations from the C source: no scan(), no AP interface, no events or
# reconnect timing (association is immediate), ifconfig()/ipconfig() report
# loopback; the IP stack is the host's.
import os

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202

_ap = {"up": True, "rssi": -55}
for _item in (os.getenv("IHD_WIFI") or "").split(","):
    if _item == "down":
        _ap["up"] = False
    elif _item.startswith("rssi="):
        _ap["rssi"] = int(_item[5:])

_sta = {"active": False, "requested": False, "connected": False, "ssid": "", "reason": 0}


def ap(up=True, rssi=None):
    # Test hook: the emulated access point appears / disappears / changes signal.
    _ap["up"] = up
    if rssi is not None:
        _ap["rssi"] = rssi
    _sta["connected"] = up and _sta["active"] and _sta["requested"]
    _sta["reason"] = 0 if _sta["connected"] else (STAT_NO_AP_FOUND if _sta["requested"] else 0)


class WLAN:
    IF_STA = STA_IF
    IF_AP = AP_IF

    def __init__(self, interface_id=STA_IF):
        if interface_id != STA_IF:
            raise ValueError("only the station interface is emulated")

    def active(self, on=None):
        if on is None:
            return _sta["active"]
        _sta["active"] = bool(on)
        if not on:
            _sta["connected"] = False
        return None

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not _sta["active"]:
            raise OSError("Wifi Not Started")
        if ssid is not None:
            _sta["ssid"] = ssid
        _sta["requested"] = True
        ap(_ap["up"])

    def disconnect(self):
        _sta["requested"] = False
        _sta["connected"] = False
        _sta["reason"] = 8  # WIFI_REASON_ASSOC_LEAVE -> STAT_IDLE

    def isconnected(self):
        return _sta["connected"]

    def status(self, param=None):
        if param is None:
            if _sta["connected"]:
                return STAT_GOT_IP
            if _sta["reason"] == 8 or not _sta["requested"]:
                return STAT_IDLE
            return _sta["reason"] or STAT_CONNECTING
        if param == "rssi":
            if not _sta["connected"]:
                raise OSError("Wifi Not Connected")
            return _ap["rssi"]
        if param == "stations":
            raise ValueError("AP required")
        raise ValueError("unknown status param")

    def config(self, *args, **kw):
        if kw:
            return None
        if args == ("ssid",):
            return _sta["ssid"]
        if args == ("mac",):
            return b"\x24\x0a\xc4\x12\x34\x56"
        raise ValueError("unknown config param")

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
