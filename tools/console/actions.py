"""What the console's buttons do: queue commands exactly as the CLI does
(`collector.py realtime` -> Collector.request_realtime, `ota.py request-update`
-> ota.update_command / command_payload / queue_update). The only place the
console imports the collector and OTA tools."""

from __future__ import annotations

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))


class ActionError(Exception):
    """A request the collector or the OTA tool refused (one line, shown to the operator)."""


def command_names() -> dict[int, str]:
    import uplink_wire as wire

    return dict(wire.CMD_NAMES)


def request_realtime(db_path: str | Path, device_id: int, seconds: int = 600) -> int:
    """Queue real-time mode for `seconds`, as `collector.py realtime` does; the command id."""
    import collector

    col = collector.Collector(db_path)
    try:
        return col.request_realtime(device_id, seconds)
    except (KeyError, ValueError) as e:
        raise ActionError(str(e).strip("'\""))
    finally:
        col.db.close()


def request_update(db_path: str | Path, device_id: int, url: str, image: Path) -> tuple[int, str]:
    """Queue an OTA update for a signed image served at `url`, as `ota.py request-update` does;
    (command id, version)."""
    import ota

    try:
        cmd = ota.update_command(url, image.read_bytes())
        return ota.queue_update(Path(db_path), device_id, ota.command_payload(cmd)), cmd["version"]
    except OSError as e:
        raise ActionError(f"{image.name}: {e.strerror or e}")
    except ota.ToolError as e:
        raise ActionError(str(e))
