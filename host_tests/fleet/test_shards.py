"""Sharded ingest's map (tools/ihd/fleet/shards.py): deterministic, balanced, every
endpoint in each device's list, a dead collector's devices spread over the rest."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.fleet import shards as fs  # noqa: E402

EPS = [("10.0.0.1", 4700), ("10.0.0.2", 4700), ("10.0.0.3", 4700), ("10.0.0.4", 4700)]


def test_shares_are_deterministic_balanced_and_failover_spreads():
    m = fs.ShardMap(EPS)
    ids = range(100_000, 120_000)  # consecutive ids, as provisioning hands them out
    owners = Counter(m.owner(d) for d in ids)
    assert set(owners) == {0, 1, 2, 3} and max(owners.values()) / min(owners.values()) < 1.1
    assert fs.shard_of(4097) == fs.shard_of(4097) and fs.ShardMap(EPS).endpoints(4097) == m.endpoints(4097)
    for d in ids[:500]:
        lst = m.endpoints(d)
        assert lst[0] == EPS[m.owner(d)] and sorted(lst) == sorted(EPS)
    # collector 0 dies: its devices' next endpoints are the three others, evenly
    second = Counter(m.endpoints(d)[1] for d in ids if m.owner(d) == 0)
    assert set(second) == set(EPS[1:]) and max(second.values()) / min(second.values()) < 1.2


def test_cli_publish_and_endpoints(tmp_path):
    tool = [sys.executable, "-m", "ihd.fleet"]
    out = tmp_path / "shards.json"
    eps = sum((["--endpoint", f"{h}:{p}"] for h, p in EPS[:2]), [])
    assert subprocess.run([*tool, "publish", *eps, "--shards", "64", "-o", str(out)]).returncode == 0
    assert json.loads(out.read_text())["shards"] == 64
    r = subprocess.run([*tool, "endpoints", "--map", str(out), "4097"], capture_output=True, text=True)
    m = fs.ShardMap(EPS[:2], 64)
    assert r.stdout.split() == [f"{h}:{p}" for h, p in m.endpoints(4097)]
    r = subprocess.run([*tool, "endpoints", "--map", str(tmp_path / "none.json"), "1"], capture_output=True, text=True)
    assert r.returncode == 2 and "is not a shard map" in r.stderr and "Traceback" not in r.stderr


def test_adding_an_endpoint_moves_only_its_share():
    """Rendezvous hashing: the 5th endpoint takes ~1/5 of the shards, all moved shards go
    to it, and no other shard changes owner (with `s % n` owners ~80% moved)."""
    old = fs.ShardMap(EPS)
    new = fs.ShardMap([*EPS, ("10.0.0.5", 4700)])
    moved = [s for s in range(fs.SHARDS) if new.endpoints_[new.owners[s]] != old.endpoints_[old.owners[s]]]
    assert 0.17 < len(moved) / fs.SHARDS < 0.23, len(moved) / fs.SHARDS
    assert all(new.owners[s] == 4 for s in moved)
    ids = range(100_000, 120_000)
    dev_moved = sum(new.endpoints(d)[0] != old.endpoints(d)[0] for d in ids) / len(ids)
    assert 0.17 < dev_moved < 0.23, dev_moved
