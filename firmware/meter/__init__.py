# Meter link: reads the smart meter through the ZigBee co-processor on the
# UART. The one entry point for the application:
#   link = make_link(protocol, uart, on_reading, faults)
#   await link.run()      # runs for ever on the device
#   link.status           # meter.supervise.Status: state, counters, LQI
# protocol is "raven" (Rainforest RAVEn XML, meter/raven_link.py) or "ezsp"
# (EmberZNet EZSP over ASH, meter/ezsp_link.py: EzspLink(uart, on_reading,
# faults)). Only the chosen protocol's modules are imported, to save RAM.
# Readings: see meter/reading.py.


def make_link(protocol, uart, on_reading, faults):
    if protocol == "raven":
        from meter.raven_link import RavenLink

        return RavenLink(uart, on_reading, faults)
    if protocol == "ezsp":
        from meter.ezsp_link import EzspLink

        return EzspLink(uart, on_reading, faults)
    raise ValueError("meter: unknown co-processor protocol %r" % (protocol,))
