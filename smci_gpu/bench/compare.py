"""Compare two benchmark runs cell by cell: is a figure reproducible within noise?

``python -m smci_gpu.bench.compare first/bench.json second/bench.json`` prints, for every
(suite, stage, implementation, device, size) measured in both, the two medians and their
ratio, and the share of cells whose medians differ by less than the threshold (20 %).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _key(record: dict[str, Any]) -> tuple:
    size = json.dumps(record["size"], sort_keys=True)
    return (record["suite"], record["stage"], record["impl"], record["device"], size)


def compare(first: dict, second: dict, threshold: float = 0.2) -> dict[str, Any]:
    """Per cell: both medians and ``max/min − 1``; plus the share within ``threshold``."""
    a = {_key(r): r["seconds"]["median"] for r in first["records"]}
    b = {_key(r): r["seconds"]["median"] for r in second["records"]}
    rows = []
    for key in sorted(a.keys() & b.keys()):
        lo, hi = sorted((a[key], b[key]))
        diff = hi / lo - 1 if lo > 0 else float("inf")
        rows.append({"cell": key, "first": a[key], "second": b[key], "difference": diff})
    within = sum(r["difference"] < threshold for r in rows)
    return {"cells": rows, "within": within, "total": len(rows), "threshold": threshold}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['within']} of {result['total']} cells differ by less than "
        f"{result['threshold']:.0%} between the two runs.",
        "",
        "| stage | impl | device | run 1 s | run 2 s | difference |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["cells"]:
        suite, stage, impl, device, _ = r["cell"]
        lines.append(
            f"| {stage} | {impl} | {device} | {r['first']:.3g} | {r['second']:.3g} | "
            f"{r['difference']:.0%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    first, second = (json.loads(Path(p).read_text()) for p in (argv or sys.argv[1:])[:2])
    print(markdown(compare(first, second)))


if __name__ == "__main__":
    main()
