"""What the console's buttons do: queue commands exactly as the CLI does
(`ihd collector realtime` -> Collector.request_realtime, `ihd ota request-update`
-> ota.update_command / command_payload / queue_update). The only place the
console imports the collector and OTA tools."""

from __future__ import annotations

from pathlib import Path


class ActionError(Exception):
    """A request the collector or the OTA tool refused (one line, shown to the operator)."""


def command_names() -> dict[int, str]:
    from ihd.uplink import wire

    return dict(wire.CMD_NAMES)


def request_realtime(db_path: str | Path, device_id: int, seconds: int = 600) -> int:
    """Queue real-time mode for `seconds`, as `ihd collector realtime` does; the command id."""
    from ihd.collector import ingest as collector

    col = collector.Collector(db_path)
    try:
        return col.request_realtime(device_id, seconds)
    except (KeyError, ValueError) as e:
        raise ActionError(str(e).strip("'\""))
    finally:
        col.db.close()


def request_update(db_path: str | Path, device_id: int, url: str, image: Path) -> tuple[int, str]:
    """Queue an OTA update for a signed image served at `url`, as `ihd ota request-update` does;
    (command id, version)."""
    from ihd.ota import tool as ota

    try:
        cmd = ota.update_command(url, image.read_bytes())
        return ota.queue_update(Path(db_path), device_id, ota.command_payload(cmd)), cmd["version"]
    except OSError as e:
        raise ActionError(f"{image.name}: {e.strerror or e}")
    except ota.ToolError as e:
        raise ActionError(str(e))
