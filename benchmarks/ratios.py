"""Summarize a saved pytest-benchmark run as a Markdown table of ratios.

    python benchmarks/ratios.py run.json [--peer torch]

One row per group ``equation[size]``: the median time of fastnn's JIT form and how
many times slower each other form is (``loop``, ``vec``, ``torch``...: a ratio above
1 means the JIT form is faster; ``-`` where the form was not run, e.g. the Python
loop at large sizes).
"""

import argparse
import json
import sys
from collections import defaultdict

ORDER = ("loop", "loop_jit", "vec", "torch", "torch_foreach", "torch_fused", "sklearn")


def _fmt_time(t):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


def table(run, stat="median"):
    groups = defaultdict(dict)
    for b in run["benchmarks"]:
        form = b["extra_info"].get("form") or b["params"].get("form")
        groups[b["group"]][form] = b["stats"][stat]
    forms = [f for f in ORDER if any(f in g for g in groups.values())]
    head = ["equation[size]", f"jit ({stat})"] + [f"{f} / jit" for f in forms]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group in sorted(groups):
        times = groups[group]
        jit = times.get("jit")
        if jit is None:
            continue
        cells = [f"`{group}`", _fmt_time(jit)]
        cells += [f"{times[f] / jit:.2f}" if f in times else "-" for f in forms]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="a file written by --benchmark-json or --benchmark-save")
    parser.add_argument("--stat", default="median", choices=("min", "median", "mean"))
    args = parser.parse_args(argv)
    with open(args.json) as fh:
        run = json.load(fh)
    info = run.get("machine_info", {})
    print(f"{info.get('cpu', {}).get('brand_raw', '?')}, python {info.get('python_version')}")
    print()
    print(table(run, args.stat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
