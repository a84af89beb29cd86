# The ESP32 port's `select` module (extmod/modselect.c) at device speed:
# poll timeouts are device milliseconds, so asyncio's waits run `speed`
# times faster, like the emulated time module (IHD_CLOCK speed).
# An emulated machine.UART is polled through its host socket (the object
# returned by poll()/ipoll() is still the UART, as asyncio expects).
# Deviations from the C source: a positive timeout waits at least one real
# ms (speed device ms): the host cannot wait less, and polling without
# waiting instead span the host CPU (100% of a core at 300x, 313 s of CPU
# per simulated day); the Unix HAL's waits have the same 1-2 real ms floor.
# select.select() is not provided (the firmware and asyncio use poll only).
from _esp32emu import builtin
from _esp32emu.time import speed

_S = builtin("select")
POLLIN = _S.POLLIN
POLLOUT = _S.POLLOUT
POLLERR = _S.POLLERR
POLLHUP = _S.POLLHUP


def _real(timeout):
    if timeout is None or timeout <= 0:
        return timeout
    t = timeout // speed
    return t if t > 0 else 1


class _Poll:
    def __init__(self):
        self._p = _S.poll()
        self._back = {}  # id(host object) -> emulated object

    def _host(self, obj):
        h = getattr(obj, "_poll_host", None)
        if h is None:
            return obj
        h = h()
        self._back[id(h)] = obj
        return h

    def register(self, obj, mask=POLLIN | POLLOUT):
        self._p.register(self._host(obj), mask)

    def modify(self, obj, mask):
        self._p.modify(self._host(obj), mask)

    def unregister(self, obj):
        h = self._host(obj)
        self._back.pop(id(h), None)
        self._p.unregister(h)

    def poll(self, timeout=-1):
        back = self._back
        return [(back.get(id(t[0]), t[0]), t[1]) for t in self._p.poll(_real(timeout))]

    def ipoll(self, timeout=-1, flags=0):
        back = self._back
        for t in self._p.ipoll(_real(timeout), flags):
            yield back.get(id(t[0]), t[0]), t[1]


def poll():
    return _Poll()
