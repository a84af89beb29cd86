"""Sharded ingest: which collector endpoint serves which devices (docs/fleet.md).

    fleet/shards.py publish --endpoint HOST:PORT [--endpoint ...] [--shards 4096] [-o shards.json]
    fleet/shards.py endpoints --map shards.json DEVICE_ID     # the device's ordered endpoint list

A device's shard is crc32 of its id (4 bytes, big-endian) mod `shards`, a fixed
number much larger than the number of collectors. Each shard's endpoints are
ranked by rendezvous (highest-random-weight) hashing: weight = the first 8
bytes of blake2b("SHARD HOST:PORT"), highest first. The first is the shard's
owner; the list in that order is the device's endpoint list (what provisioning
writes into its configuration, docs/config.md), so a dead collector's devices
spread evenly over all the others, and adding an (n+1)th endpoint moves only
the ~1/(n+1) of shards it wins, all of them to it (with `s % n` owners it moved
~n/(n+1)). The device already fails over down its list after 3 silent
attempts (docs/uplink.md, "Failover").

Ownership is a routing preference, not a lock: every collector takes any
registered device (the one it fails over to must), and correctness when two serve
one device at once comes from the database: readings keyed by (device, epoch,
seq), the device's row locked in the transaction that moves its window.
Adding a collector moves only the shards it takes (publish again and re-provision
those devices; until then they fail over or keep using their old owner).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zlib
from pathlib import Path

SHARDS = 4096


def shard_of(device_id: int, shards: int = SHARDS) -> int:
    return zlib.crc32(device_id.to_bytes(4, "big")) % shards


def weight(shard: int, endpoint: tuple[str, int]) -> int:
    """Rendezvous weight of an endpoint for a shard (names, not positions: reordering or
    adding endpoints changes no other endpoint's weight)."""
    h, p = endpoint
    return int.from_bytes(hashlib.blake2b(f"{shard} {h}:{p}".encode(), digest_size=8).digest(), "big")


class ShardMap:
    def __init__(self, endpoints: list[tuple[str, int]], shards: int = SHARDS, owners: list[int] | None = None):
        if not endpoints:
            raise ValueError("a shard map needs at least one endpoint")
        self.endpoints_ = [(h, int(p)) for h, p in endpoints]
        self.shards = shards
        self.owners = owners if owners is not None else [self.ranked(s)[0] for s in range(shards)]

    def ranked(self, shard: int) -> list[int]:
        """Endpoint indices by rendezvous weight for this shard, highest (the owner) first."""
        return sorted(range(len(self.endpoints_)), key=lambda i: weight(shard, self.endpoints_[i]), reverse=True)

    def owner(self, device_id: int) -> int:
        return self.owners[shard_of(device_id, self.shards)]

    def endpoints(self, device_id: int) -> list[tuple[str, int]]:
        """Owner first, then the others by rendezvous weight (a dead collector's devices spread)."""
        s = shard_of(device_id, self.shards)
        first = self.owners[s]
        return [self.endpoints_[i] for i in [first, *(i for i in self.ranked(s) if i != first)]]

    def to_json(self) -> dict:
        return {
            "shard": "crc32(device_id as 4 bytes big-endian) mod shards",
            "owner": "endpoint of highest blake2b-64('SHARD HOST:PORT') (rendezvous hashing)",
            "shards": self.shards,
            "endpoints": [f"{h}:{p}" for h, p in self.endpoints_],
            "owners": self.owners,
        }

    @classmethod
    def from_json(cls, obj: dict) -> ShardMap:
        eps = [(e.rsplit(":", 1)[0].strip("[]"), int(e.rsplit(":", 1)[1])) for e in obj["endpoints"]]
        return cls(eps, obj["shards"], obj["owners"])


def _endpoint(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{s!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("publish", help="write the shard map")
    p.add_argument("--endpoint", type=_endpoint, action="append", required=True, help="HOST:PORT (repeatable)")
    p.add_argument("--shards", type=int, default=SHARDS)
    p.add_argument("-o", "--output", help="file (default: stdout)")
    p = sub.add_parser("endpoints", help="a device's ordered endpoint list")
    p.add_argument("--map", required=True)
    p.add_argument("device_id", type=int)
    a = ap.parse_args(argv)
    if a.cmd == "publish":
        if a.shards < len(a.endpoint):
            print(f"fleet_shards: {a.shards} shards for {len(a.endpoint)} endpoints: give more shards", file=sys.stderr)
            return 2
        text = json.dumps(ShardMap(a.endpoint, a.shards).to_json())
        if a.output:
            Path(a.output).write_text(text + "\n")
        else:
            print(text)
        return 0
    try:
        m = ShardMap.from_json(json.loads(Path(a.map).read_text()))
    except (OSError, ValueError, KeyError, IndexError) as e:
        print(
            f"fleet_shards: {a.map} is not a shard map ({e}): make one with `fleet/shards.py publish`", file=sys.stderr
        )
        return 2
    print(" ".join(f"{h}:{p}" for h, p in m.endpoints(a.device_id)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
