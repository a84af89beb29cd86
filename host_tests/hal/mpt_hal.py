# HAL pieces that need no host peer: clock, pins and SPI recording, reset.
import time

import hal
from hal.unix import Clock

HEAP = "96k"


def test_clock_virtual_start_and_set():
    c = Clock(utc=1_700_000_000, valid=False)
    assert not c.valid()
    assert 1_700_000_000 <= c.utc() <= 1_700_000_001
    c.set_utc(1_800_000_000)
    assert c.valid()
    assert 1_800_000_000 <= c.utc() <= 1_800_000_001


def test_clock_speed_accelerates_ticks_and_utc():
    c = Clock(utc=1_000_000, speed=1000)
    t0 = c.ticks_ms()
    time.sleep_ms(20)
    dt = time.ticks_diff(c.ticks_ms(), t0)
    assert 15_000 <= dt <= 200_000, dt  # ~20 s of device time
    assert c.utc() >= 1_000_015
    assert c.real_ms(4000) == 4


def test_default_clock_is_host_utc():
    assert hal.clock.valid()
    assert abs(hal.clock.utc() - int(time.time())) <= 1
    assert isinstance(hal.clock.utc(), int)


def test_bus_sink_sees_pins_and_spi_in_order():
    log = []
    hal.set_bus_sink(lambda kind, a, b: log.append((kind, a)))
    dc = hal.Pin(9, hal.Pin.OUT, value=1)
    spi = hal.Spi({})
    dc(0)
    spi.write(b"\x12")
    dc(1)
    spi.write(bytearray(b"\x01\x02"))
    hal.set_bus_sink(None)
    spi.write(b"\x99")
    assert log == [("pin", 9), ("pin", 9), ("spi", b"\x12"), ("pin", 9), ("spi", b"\x01\x02")]


def test_input_pin_reads_source():
    level = [1]
    busy = hal.Pin(7, hal.Pin.IN, source=lambda: level[0])
    assert busy.value() == 1
    level[0] = 0
    assert busy() == 0


def test_reset_cause_defaults_to_power_on():
    assert hal.reset_cause() == "power-on"


def test_wifi_emulation_states():
    assert hal.wifi.isconnected() and hal.wifi.rssi() < 0
    hal.wifi.connected = False
    assert hal.wifi.rssi() is None
