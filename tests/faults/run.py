"""Run the fault scenarios and print their figures as a Markdown table.

    .venv/bin/python -m tests.faults [--quick] [--json PATH] [--soak SECONDS] [--only a,b]

Full run (the default): 100 kills of instances, 20 kills of the main, SIGSTOP
with both policies, a producer stopped 5 s mid-claim, 10,000 malformed records,
a 20 s backlog at shutdown, 30 tap/shutdown cycles and a 10-minute soak: about
13 minutes on a 2-core machine. --quick: the same scenarios, smaller (about
1.5 minutes). Progress goes to stderr, the table to stdout. The exit
status is 1 if a scenario could not run to its end (a broken promise is a
result, not an error: it shows as "no" in the table).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
import traceback

from . import common, known

ORDER = ("kill_instance", "kill_main", "stop_subscriber", "stalled_claim", "malformed",
         "shutdown_backlog", "cycles", "soak")

FULL = {
    "kill_instance": {"kills": 100, "per_round": 10},
    "kill_main": {"trials": 20, "cap_s": 3.0},
    "stop_subscriber": {"block_missed": 12, "drop_missed": 2000},
    "stalled_claim": {"stop_s": 5.0},
    "malformed": {"count": 10_000},
    "shutdown_backlog": {"backlog": 400, "work_s": 0.05},
    "cycles": {"cycles": 30},
    "soak": {"seconds": 600.0},
}
QUICK = {
    "kill_instance": {"kills": 20, "per_round": 10},
    "kill_main": {"trials": 3, "cap_s": 2.0},
    "stop_subscriber": {"block_missed": 6, "drop_missed": 1000},
    "stalled_claim": {"stop_s": 2.0},
    "malformed": {"count": 2000},
    # 12 s: more than the 10 s that shutdown drains today, so the quick run shows it too.
    "shutdown_backlog": {"backlog": 240, "work_s": 0.05},
    "cycles": {"cycles": 5},
    "soak": {"seconds": 30.0},
}


def environment() -> dict:
    load = os.getloadavg()
    return {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}",
            "python": platform.python_version(), "load_average_at_start": [round(x, 2) for x in load]}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _named(scenario: str, check: str) -> str:
    """A broken check, with the defect that breaks it if it is a known one."""
    reason = known.BROKEN.get((scenario, check))
    return f"{check} ({reason.split(':')[0]})" if reason else check


def table(outcomes: list, errors: dict) -> str:
    lines = ["| promise | fault injected | figures | holds |", "|---|---|---|---|"]
    for o in outcomes:
        holds = "yes" if o.held else "**no**: " + ", ".join(_named(o.name, c) for c in o.broken())
        lines.append(f"| {_cell(o.promise)} | {_cell(o.fault)} | {_cell(o.summary)} | {_cell(holds)} |")
    for name, error in errors.items():
        lines.append(f"| ({name}) | | the scenario could not run: {_cell(error)} | error |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: under 3 minutes")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="the soak's duration")
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated, of: {', '.join(ORDER)}")
    args = parser.parse_args(argv)
    common.ensure_path()
    sizes = {k: dict(v) for k, v in (QUICK if args.quick else FULL).items()}
    if args.soak is not None:
        sizes["soak"]["seconds"] = args.soak
    names = ORDER if not args.only else tuple(n.strip() for n in args.only.split(","))
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; the scenarios are {', '.join(ORDER)}")
    env = environment()
    print(f"fault suite ({'quick' if args.quick else 'full'}), {env['date']}, {env['machine']}",
          file=sys.stderr, flush=True)
    outcomes, errors = [], {}
    started = time.monotonic()
    for name in names:
        print(f"--- {name} {sizes[name]}", file=sys.stderr, flush=True)
        module = importlib.import_module(f"faults.{name}")
        try:
            outcome = module.run(**sizes[name])
        except Exception as exc:  # report it, go on with the next scenario
            errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            continue
        outcomes.append(outcome)
        print(f"--- {name}: {'holds' if outcome.held else 'broken: ' + ', '.join(outcome.broken())} "
              f"({outcome.seconds:.0f} s): {outcome.summary}", file=sys.stderr, flush=True)
    env["seconds"] = round(time.monotonic() - started)
    print(f"\nFault suite ({'quick' if args.quick else 'full'} run, {env['date']}; {env['machine']}; "
          f"Python {env['python']}; {env['seconds']} s):\n")
    print(table(outcomes, errors))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "sizes": {n: sizes[n] for n in names},
                       "outcomes": [o.to_dict() for o in outcomes], "errors": errors},
                      f, indent=2, default=str)
    return 1 if errors else 0
