# Meter link: reads the smart meter through the ZigBee co-processor on the
# UART. The one entry point for the application:
#   link = make_link(protocol, uart, on_reading, faults, install_code=None, **opts)
#   await link.run()      # runs for ever on the device
#   link.status           # meter.supervise.Status: state, counters, LQI
# protocol is "raven" (Rainforest RAVEn XML, meter/raven_link.py) or "ezsp"
# (EmberZNet EZSP over ASH, meter/ezsp_link.py). uart: an open hal.Uart, or
# a hal.Uart config dict (board.METER_UART) for the link to open (EZSP
# re-opens it after a broken emulated UART). install_code: bytes or hex
# text, used by EZSP to join the meter's network (the RAVEn stick joins by
# itself and ignores it). opts go to the link: EZSP meter_nwk, meter_ep,
# poll_s, silent_ms; RAVEn silent_ms, probe_ms. Only the chosen protocol's
# modules are imported, to save RAM. Readings: see meter/reading.py.


def make_link(protocol, uart, on_reading, faults, install_code=None, **opts):
    if protocol == "raven":
        from meter.raven_link import RavenLink

        if isinstance(uart, dict):
            import hal

            uart = hal.Uart(uart)
        return RavenLink(uart, on_reading, faults, **opts)
    if protocol == "ezsp":
        from meter.ezsp_link import EzspLink

        return EzspLink(uart, on_reading, faults, install_code=install_code, **opts)
    raise ValueError("meter: unknown co-processor protocol %r" % (protocol,))
