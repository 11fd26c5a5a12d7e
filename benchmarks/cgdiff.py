#!/usr/bin/env python
"""Per-message instruction counts from two callgrind runs that differ only in
how many messages they handled (profile_hot_path.py --mode round at two N):
(B - A) / (N_B - N_A) for the total and for each function, exclusive (self)
and inclusive, so every fixed cost (imports, set-up, close) cancels out.

  python benchmarks/cgdiff.py A B messages [--top 25] [--minus A2 B2]

--minus: subtract another pair's per-message counts first (a 'both' pair minus a
'publish' pair gives the delivery side alone).
"""
from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter

LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(?:\*\s+)?(.+?)(?:\s+\[[^\]]*\])?$")


def costs(path: str, inclusive: bool) -> Counter:
    out = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                          "--threshold=100", path], capture_output=True, text=True, check=True).stdout
    c: Counter = Counter()
    body = out.split("file:function", 1)[1] if "file:function" in out else out
    for line in body.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        name = m.group(2).strip()
        name = name.split(":", 1)[1] if ":" in name else name   # drop the source file
        name = re.sub(r"'\d+$", "", name)                       # recursion levels together
        c[name] += int(m.group(1).replace(",", ""))
    return c


def total(path: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise ValueError(f"{path}: no summary line")


def per_message(a: str, b: str, n: int, inclusive: bool) -> tuple[float, Counter]:
    ca, cb = costs(a, inclusive), costs(b, inclusive)
    diff = Counter({k: (cb.get(k, 0) - ca.get(k, 0)) / n for k in set(ca) | set(cb)})
    return (total(b) - total(a)) / n, diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("messages", type=int, help="N_B - N_A")
    ap.add_argument("--minus", nargs=2, metavar=("A2", "B2"))
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    for inclusive in (False, True):
        t, d = per_message(args.a, args.b, args.messages, inclusive)
        if args.minus:
            t2, d2 = per_message(*args.minus, args.messages, inclusive)
            t -= t2
            d = Counter({k: d.get(k, 0) - d2.get(k, 0) for k in set(d) | set(d2)})
        print(f"\n{'inclusive' if inclusive else 'self'} instructions per message "
              f"(total {t:,.0f}):")
        for name, v in sorted(d.items(), key=lambda kv: -kv[1])[:args.top]:
            if abs(v) >= 10:
                print(f"  {v:9,.0f}  {name}")


if __name__ == "__main__":
    main()
