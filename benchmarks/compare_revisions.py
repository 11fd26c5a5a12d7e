"""Before/after: run Ether's benchmarks in two checkouts, alternately, and print
Ether's own figures side by side.

    .venv/bin/python benchmarks/compare_revisions.py BEFORE_TREE AFTER_TREE \\
        [--bench pipeline,services,transport,arrays] [--rounds 2] [--quick] [--json PATH]

Each tree is a checkout with its own `.venv` (pip install -e ".[bench]"; the two
venvs must hold the same distributions, which is checked) and its own copy of the benchmarks, so each side runs the benchmark code of its own
revision. Rounds alternate (before, after, before, after, ...) so that a change
in the machine's load falls on both sides. Every run writes the benchmark's own
JSON; this script keeps the Ether rows of each summary (medians of the
benchmark's runs), takes the median over rounds, and reports after / before
with the spread (min-max over rounds) of each side, so a difference can be read
against the noise. Peers are not compared (they did not change), except where a
benchmark's summary only exists per peer, in which case only the "ether" peer
is kept.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BENCHES = {
    "pipeline": ["benchmarks/bench_pipeline.py"],
    "services": ["benchmarks/bench_services.py"],
    "transport": ["benchmarks/bench_transport.py", "--peers", "ether"],
    "arrays": ["benchmarks/bench_arrays.py"],
}
# Figures worth comparing (leaf names in the benchmarks' JSON summaries).
KEYS = ("mps", "p50_us", "p99_us", "rps", "gbps", "handoffs_per_s", "frames_per_s",
        "deliveries_per_s", "median", "tap_s", "shutdown_s", "x_memcpy", "mps_total",
        "tap", "shutdown", "import", "process_s")
LOWER_IS_BETTER = ("_us", "tap", "shutdown", "import", "process_s", "latency")


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, path + (str(key),))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, float(node)


def ether_figures(report: dict) -> dict[str, float]:
    """The Ether summary figures of one benchmark report, by path."""
    out = {}
    for path, value in _leaves(report):
        if "runs" in path or path[0] in ("meta", "params", "python", "platform", "cpus"):
            continue
        if not any(p.lower().startswith(("ether", "quickstart")) for p in path):
            continue  # a peer's row
        if path[-1] in KEYS or path[-1].endswith(("_mps", "_gbps", "_us")):
            out["/".join(p for p in path if p not in ("summary", "workloads", "peers"))] = value
    return out


# Sums that compare like with like across revisions: issue 9 moved the transport's
# imports from `import ether` to the first tap, so only their sum is what a user waits
# for between starting Python and a ready session.
DERIVED = {"quickstart/import+tap": ("quickstart/import", "quickstart/tap")}


def with_derived(figures: dict[str, float]) -> dict[str, float]:
    for name, parts in DERIVED.items():
        if all(p in figures for p in parts):
            figures[name] = sum(figures[p] for p in parts)
    return figures


def verdict(mb: float, lb: float, hb: float, ma: float, lower: bool) -> str:
    """'slower' when the after median is worse than every before run, 'faster' when it
    is better than every one, else 'within' the before runs' spread."""
    if (ma > hb) if lower else (ma < lb):
        return "slower"
    if (ma < lb) if lower else (ma > hb):
        return "faster"
    return "within"


def run_one(tree: str, bench: list[str], quick: bool) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [os.path.join(tree, ".venv", "bin", "python"), *bench, "--json", out]
    if quick:
        cmd.append("--quick")
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    took = time.monotonic() - started
    try:
        with open(out) as f:
            report = json.load(f)
    except (OSError, ValueError):
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
        raise SystemExit(f"{' '.join(bench)} in {tree} wrote no report (exit {proc.returncode})")
    finally:
        try:
            os.unlink(out)
        except OSError:
            pass
    print(f"  {os.path.basename(tree.rstrip('/'))}: {' '.join(bench)} {took:.0f} s "
          f"(load {os.getloadavg()[0]:.2f})", flush=True)
    return report


def distributions(tree: str) -> dict[str, str]:
    """name -> version of what the tree's venv has installed (Ether itself left out)."""
    code = ("import importlib.metadata as m, json; print(json.dumps({d.metadata['Name'].lower(): "
            "d.version for d in m.distributions()}))")
    out = subprocess.run([os.path.join(tree, ".venv", "bin", "python"), "-c", code],
                         capture_output=True, text=True, check=True).stdout
    return {k: v for k, v in json.loads(out).items() if k != "ether"}


def same_environment(before: str, after: str) -> list[str]:
    """How the two venvs differ. They must not: a first tap's cost grows with the
    installed distributions (pydantic scans every one's entry points for plugins
    at its first model), so a venv with the dev extras taps slower than one with
    only the bench extra, whatever the code."""
    b, a = distributions(before), distributions(after)
    return [f"{name}: before {b.get(name, '-')}, after {a.get(name, '-')}"
            for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--bench", default=",".join(BENCHES))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--allow-different-venvs", action="store_true",
                    help="compare even if the venvs' installed distributions differ")
    args = ap.parse_args()
    names = [b.strip() for b in args.bench.split(",") if b.strip()]
    unknown = [b for b in names if b not in BENCHES]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHES)}")
    differ = same_environment(args.before, args.after)
    if differ and not args.allow_different_venvs:
        raise SystemExit("the two venvs differ (install the same packages in both, e.g. "
                         "`pip freeze` of one into the other, or pass --allow-different-venvs):\n  "
                         + "\n  ".join(differ))
    results: dict = {name: {"before": [], "after": []} for name in names}
    started = time.strftime("%Y-%m-%d %H:%M")
    for r in range(args.rounds):
        for name in names:
            print(f"round {r + 1}/{args.rounds}, {name}", flush=True)
            for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
                tree = getattr(args, side)
                results[name][side].append(with_derived(ether_figures(
                    run_one(tree, BENCHES[name], args.quick))))
    rows = []
    for name in names:
        keys = sorted(set().union(*results[name]["before"]) & set().union(*results[name]["after"]))
        for key in keys:
            b = [f[key] for f in results[name]["before"] if key in f]
            a = [f[key] for f in results[name]["after"] if key in f]
            if not a or not b:
                continue
            mb, ma = statistics.median(b), statistics.median(a)
            ratio = ma / mb if mb else float("nan")
            lower = any(t in key for t in LOWER_IS_BETTER)
            rows.append((name, key, mb, min(b), max(b), ma, min(a), max(a), ratio, lower))
    print(f"\nBefore: {args.before}\nAfter:  {args.after}\n{args.rounds} alternating round(s), "
          f"started {started}, {os.cpu_count()} CPUs{' (quick)' if args.quick else ''}\n")
    print(f"| bench | figure | before (min-max) | after (min-max) | after/before | vs before's spread |")
    print(f"|---|---|---|---|---|---|")
    for name, key, mb, lb, hb, ma, la, ha, ratio, lower in rows:
        better = "lower is better" if lower else ""
        print(f"| {name} | {key} | {mb:.4g} ({lb:.4g}-{hb:.4g}) | {ma:.4g} ({la:.4g}-{ha:.4g}) | "
              f"{ratio:.3f} {better} | {verdict(mb, lb, hb, ma, lower)} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"before": args.before, "after": args.after, "rounds": args.rounds,
                       "started": started, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
