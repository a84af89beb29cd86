"""Sharded ingest (docs/fleet.md): which collector endpoint serves which devices
(shards.py)."""
