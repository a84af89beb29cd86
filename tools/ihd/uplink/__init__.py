"""The uplink on the host (docs/wire-format.md): datagrams and their authentication
(wire.py), the batch codec (codec.py, a CPython port of the firmware encoder)
and its bit I/O (bits.py). Shared by the collector, the simulator and the bench."""
