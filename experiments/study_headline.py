"""The headline table of a study report: per-task IQM final return (95% stratified-
bootstrap CI) of every algorithm, and the aggregate IQM of normalised scores.

    python experiments/study_headline.py runs/flagship/report/report.json
"""

from __future__ import annotations

import json
import sys


def cell(row: dict | None, scale: float = 1.0, digits: int = 0, status: str = "-") -> str:
    if row is None:
        return status
    if row.get("all_diverged"):
        return "diverged"
    lo, hi = (x * scale for x in row["IQM_ci95"])
    return f"{row['IQM'] * scale:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def headline(report: dict) -> str:
    tasks, labels = report["tasks"], report["labels"]
    short = [t.split("/")[-1] for t in tasks]
    agg = (report.get("aggregate") or {}).get("by_label", {})
    head = ["algorithm", *short] + (["aggregate IQM (x1000)"] if agg else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lab in labels:
        status = [report["cells"].get(f"{lab}/{t}", {}).get("status", "-") for t in tasks]
        row = [lab] + [
            cell(report["per_task"][t].get(lab), status=s)
            for t, s in zip(tasks, status, strict=True)
        ]
        if agg:
            row.append(cell(agg.get(lab), 1000.0, status="(not every task)"))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(headline(json.load(f)))
