"""`ihd`: one command for the host side, as esptool and mpremote have one.

Installed into .venv/bin by the project's pyproject.toml (a console script;
`make venv`). Each part keeps its own tool and options; `ihd PART ...` runs
that tool's main() with the rest of the command line:

    ihd sim run ...                      ihd/sim/              (docs/sim.md)
    ihd collector serve|add-device|realtime|command|export-csv|stats [--db DB] ...
                                         ihd/collector/        (docs/uplink.md)
    ihd collector console --db DB [--port P]
                                         ihd/collector/console/ (docs/console.md)
    ihd ota keygen|digest|sign|make-image|verify|keylist|serve|request-update ...
                                         ihd/ota/              (docs/ota.md)
    ihd provision make|check|push ...    ihd/provision/        (docs/config.md)
    ihd capture decode ...               ihd/capture/          (docs/meter.md)
    ihd panel decode|render|scenes|previews ...
                                         ihd/panel/            (docs/display.md)
    ihd deploy ... / ihd flash ...       ihd/deploy/           (docs/boards.md)
    ihd emulator serve ...               ihd/emulators/        (docs/meter.md)
    ihd bench ...                        ihd/devihd bench (bench/report.md)
"""

from __future__ import annotations

import importlib
import sys

# part -> (module of its tool, sub-command put in front of the arguments)
PARTS: dict[str, tuple[str, str | None]] = {
    "sim": ("ihd.sim.run", None),
    "collector": ("ihd.collector.ingest", None),
    "ota": ("ihd.ota.tool", None),
    "provision": ("ihd.provision.tool", None),
    "capture": ("ihd.capture.decode", None),
    "panel": ("ihd.panel.emulator", None),
    "deploy": ("ihd.deploy.tool", "deploy"),
    "flash": ("ihd.deploy.tool", "flash"),
    "emulator": ("ihd.emulators.coproc", None),
    "bench": ("ihd.dev.bench", None),
}


def usage() -> str:
    return (__doc__ or "").split("\n\n", 1)[1].rstrip() + "\n"


def _collector_args(rest: list[str]) -> list[str]:
    # `ihd collector stats --db DB` as well as `ihd collector --db DB stats`:
    # the collector's --db is an option of the tool, before the sub-command
    db: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--db" and i + 1 < len(rest):
            db = ["--db", rest[i + 1]]
            i += 2
            continue
        if a.startswith("--db="):
            db = ["--db", a[5:]]
        else:
            out.append(a)
        i += 1
    return db + out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write("usage: ihd PART ...\n\n" + usage())
        return 0 if args else 2
    part, rest = args[0], args[1:]
    if part not in PARTS:
        sys.stderr.write(f"ihd: no part {part!r}; one of {', '.join(PARTS)} (ihd --help)\n")
        return 2
    name, sub = PARTS[part]
    sys.argv[0] = f"ihd {part}"  # argparse names the command as typed
    if part == "collector" and rest[:1] == ["console"]:
        from ihd.collector import console

        return console.main(rest[1:]) or 0
    if part == "collector":
        rest = _collector_args(rest)
    module = importlib.import_module(name)
    return module.main(([sub] if sub else []) + rest) or 0


if __name__ == "__main__":
    sys.exit(main())
