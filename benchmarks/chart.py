"""Draw ``docs/benchmarks.png`` from ``results.json`` (and ``baseline.json`` for before/after).

Run: ``python benchmarks/chart.py [results.json]`` (run_all.py calls it after a run).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import report
from report import get

CHART = report.BENCH.parent / "docs" / "benchmarks.png"
COLOURS = {"Flask": "#4C72B0", "Starlette": "#DD8452", "bare": "#999999", "memory": "#55A868",
           "SQLite": "#C44E52", "before": "#BBBBBB", "after": "#55A868"}
Series = List[Tuple[str, List[float]]]


def bars(ax: Any, labels: Sequence[str], series: Series, spec: str, title: str, y: str) -> None:
    """Grouped bars, one group per label, one bar per series, each with its value on top."""
    width = 0.8 / len(series)
    for index, (name, values) in enumerate(series):
        offset = (index - (len(series) - 1) / 2) * width
        xs = [i + offset for i in range(len(labels))]
        drawn = ax.bar(xs, values, width=width, label=name, color=COLOURS.get(name))
        for bar, value in zip(drawn, values):
            if value:
                where = (bar.get_x() + width / 2, bar.get_height())
                ax.annotate(format(value, spec), where, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(y)
    ax.legend(fontsize=8)


def draw(results: Dict[str, Any], baseline: Optional[Dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13, 13.5))
    grid = fig.add_gridspec(3, 2)
    m, o = results.get("machine", {}), results.get("overhead", {})
    title = f"wxmiddleware benchmarks — {results.get('started')}, {m.get('cores')} cores"
    fig.suptitle(f"{title}, Python {m.get('python')}", fontsize=12)
    names = {"memory": "memory", "sqlite": "SQLite", "redis": "Redis",
             "flask_session_redis": "Flask-Session\n(Redis)",
             "starlette_session": "Starlette\nSessionMiddleware"}

    def per_framework(key: str) -> Series:
        return [(fw.title(), [get(o, f"{fw}.{key}.{name}") or 0 for name in names])
                for fw in ("flask", "starlette")]

    ax = fig.add_subplot(grid[0, 0])
    bars(ax, list(names.values()), per_framework("ratio_vs_bare"), ".2f",
         "In process: authenticated GET /api/me (goals dashed)", "throughput vs bare app")
    ax.axhline(0.95, color=COLOURS["Flask"], linestyle="--", linewidth=1)
    ax.axhline(0.90, color=COLOURS["Starlette"], linestyle="--", linewidth=1)
    ax.set_ylim(0, 1.1)
    ax = fig.add_subplot(grid[0, 1])
    bars(ax, list(names.values()), per_framework("cost_us"), ".0f",
         "In process: cost per request, ours vs peers", "µs added to the bare request (log)")
    ax.set_yscale("log")

    al, wl = results.get("asgi_logins", {}), results.get("wsgi_logins", {})
    setups = ("bare", "memory", "sqlite")
    groups = {f"ASGI\n{d}": [get(al, f"{d}.{s}.of_ideal") or 0 for s in setups] for d in al
              if d in ("direct", "httpx")}
    if wl:
        groups["WSGI\ngunicorn"] = [get(wl, f"of_ideal.{s}") or 0 for s in setups]
    series = [(name, [values[i] for values in groups.values()])
              for i, name in enumerate(("bare", "memory", "SQLite"))]
    ax = fig.add_subplot(grid[1, 0])
    bars(ax, list(groups), series, ".2f", "100 logins at once, WeChat at 100 ms (goal 0.8 dashed)",
         "share of concurrency ÷ latency")
    ax.axhline(0.8, color="black", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1.05)

    sv = results.get("servers")
    if sv:
        series = [(name, [get(sv, f"{fw}.{key}.rps") or 0 for fw in ("flask", "starlette")])
                  for key, name in (("bare", "bare"), ("sqlite", "SQLite"), ("memory", "memory"))]
        ax, labels = fig.add_subplot(grid[1, 1]), ["gunicorn (Flask)", "uvicorn (Starlette)"]
        bars(ax, labels, series, ".0f", f"Over real servers, {sv['load_generator']},"
             f" {sv['connections']} connections", "requests/s")

    rows = [row for row in report.goals(results) if row["chart"]]
    before = {row["goal"]: row.get("number") for row in report.goals(baseline or {})}
    series = [("before", [before.get(row["goal"]) or 0 for row in rows]),
              ("after", [row["number"] or 0 for row in rows])]
    when = f"baseline of {baseline.get('started')}" if baseline else "no baseline"
    ax = fig.add_subplot(grid[2, :])
    bars(ax, [row["chart"] for row in rows], series if baseline else series[1:], ".2f",
         f"Goals, before ({when}) and after (this run)", "ratio (goal: black line)")
    for index, row in enumerate(rows):
        ax.hlines(row["goal_number"], index - 0.45, index + 0.45, color="black", linewidth=1.5)
    ax.set_ylim(0, 1.12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    CHART.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(CHART, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] = ()) -> None:
    results = report.load(Path(argv[0]) if argv else report.RESULTS_JSON)
    if results is None:
        raise SystemExit("no results.json: run benchmarks/run_all.py first")
    baseline = report.load(report.BASELINE_JSON)
    if baseline is not None and baseline.get("started") == results.get("started"):
        baseline = None  # the baseline is this run: nothing to compare
    draw(results, baseline)
    print(f"wrote {CHART}")


if __name__ == "__main__":
    main(sys.argv[1:])
