"""``python benchmarks/report.py [results.json]``: RESULTS.md from its template (``{{path:fmt}}``
takes a figure of results.json, "-" when missing, or a table drawn here), docs/benchmarks.png
(with matplotlib), from ``results.json``, ``baseline.json`` being the goals' *before*."""

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

BENCH = Path(__file__).resolve().parent
RESULTS_JSON, BASELINE_JSON = BENCH / "results.json", BENCH / "baseline.json"
TEMPLATE, RESULTS_MD = BENCH / "RESULTS.template.md", BENCH / "RESULTS.md"
CHART = BENCH.parent / "docs" / "benchmarks.png"
FRAMEWORKS = ("flask", "starlette", "django")
STORES = ("sqlite", "memory", "redis")


def get(data: Any, path: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; None where any step is missing."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def n(value: Any, spec: str = ".2f") -> str:
    """A figure as a table shows it: "-" when missing; text (already formatted) as it is."""
    return "-" if value is None else value if isinstance(value, str) else format(value, spec)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the goals ---
GOALS = [  # the goal (in the table and the chart), where its figure is, the minimum (None: none)
    ("Flask + memory vs bare, in process", "overhead.flask.ratio_vs_bare.memory", 0.95),
    ("Flask + memory vs a before_request dict hook", "overhead.flask.vs_peer.memory", 1.0),
    ("Starlette + memory vs bare, in process", "overhead.starlette.ratio_vs_bare.memory", 0.88),
    ("Starlette + memory vs AuthenticationMiddleware", "overhead.starlette.vs_peer.memory", 1.15),
    ("Django + memory vs bare, in process", "overhead.django.ratio_vs_bare.memory", None),
    ("Django + memory vs RemoteUserMiddleware", "overhead.django.vs_peer.memory", None),
    ("Flask: SQLite vs memory store, in process", "overhead.flask.sqlite_vs_memory", 0.85),
    ("Starlette: SQLite vs memory store, in process", "overhead.starlette.sqlite_vs_memory", 0.85),
    *(
        (f"{server}, {store} store, vs bare", f"servers.{framework}.{store}.ratio_vs_bare", low)
        for framework, server in zip(FRAMEWORKS, ("gunicorn", "uvicorn"))
        for store, low in (("memory", 0.97), ("redis", 0.97), ("sqlite", 0.93))
    ),
    *(
        (f"ASGI logins, {store}, {driver} driver", f"asgi_logins.{driver}.{store}.of_ideal", 0.8)
        for driver, store in (("direct", "memory"), ("direct", "sqlite"), ("httpx", "sqlite"))
    ),
    ("WSGI logins, gunicorn gthread, SQLite", "wsgi_logins.sqlite.of_ideal", 0.8),
]


def floor_path(path: str) -> Optional[str]:
    """Where the floor's figure for a goal's figure (at ``path``) is: in process, the floor
    variants'; over servers, the floor's on the same store; for logins, the bare app's."""
    part, *steps = path.split(".")
    if part == "servers":  # servers.<framework>.<store>.<figure>
        return f"servers.{steps[0]}.floor_{steps[1]}.{steps[2]}"
    if part.endswith("_logins"):  # <part>[.<driver>].<store>.of_ideal
        return ".".join([part, *steps[:-2], "bare", steps[-1]])
    floors = {"memory": "floor", "sqlite_vs_memory": "floor_sqlite_vs_memory"}  # in process
    return ".".join([part, *steps[:-1], floors[steps[-1]]]) if steps[-1] in floors else None


def figures(results: Dict[str, Any], path: Optional[str]) -> List[Optional[float]]:
    """The figure at ``path`` and, over servers, the same ratio by CPU."""
    if path is None:
        return [None, None]
    by_cpu = path.replace("ratio_vs_bare", "cpu_ratio_vs_bare")
    return [get(results, path), get(results, by_cpu) if path.startswith("servers.") else None]


def shown(figure: Optional[float], by_cpu: Optional[float], spec: str = ".3f") -> str:
    return n(figure, spec) + ("" if by_cpu is None else f" (CPU {by_cpu:{spec}})")


def status(figure: Optional[float], met: Optional[bool], floor_misses: bool = False) -> str:
    """A goal's status; ``met`` None: a figure shown without a goal (issue 23 gives none)."""
    if figure is None or met is None:
        return "not measured" if figure is None else "no goal set"
    return "met" if met else "not met, nor by the floor" if floor_misses else "not met"


def goals(results: Dict[str, Any]) -> Dict[str, List[str]]:
    """Per goal: target, figure, status, the floor's figure, ours over the floor's."""
    rows = {}
    for goal, path, low in GOALS:
        value, floor = figures(results, path), figures(results, floor_path(path))
        of_floor = [ours / bound if ours and bound else None for ours, bound in zip(value, floor)]
        met = None if low is None else value[0] is not None and value[0] >= low
        verdict = status(value[0], met, bool(low and floor[0] is not None and floor[0] < low))
        cells = shown(*value), verdict, shown(*floor), shown(*of_floor, spec=".2f")
        rows[goal] = ["none" if low is None else f"≥ {low:.2f}", *cells]
    costs = get(results, "overhead.flask.cost_us") or {}
    ours, peer = costs.get("redis"), costs.get("flask_session_redis")
    cost_status = status(ours, ours is not None and peer is not None and ours < peer)
    cost = f"{n(ours, '.0f')} µs vs {n(peer, '.0f')} µs"
    rows["RedisStore cost per request < Flask-Session's"] = ["< peer", cost, cost_status, "-", "-"]
    commands = get(results, "redis_commands.wsgi_request.total")
    commands_status = status(commands, commands == 1)
    rows["Redis commands per authenticated request"] = ["1", n(commands), commands_status, "-", "-"]
    return rows


# --- the tables ---
Columns = Sequence[Tuple[str, str, str]]  # header, path ("{}": the row's name), format
OVERHEAD_COLUMNS = [("µs/request", "us_per_request.{}", ".1f")]
OVERHEAD_COLUMNS += [("throughput vs bare", "ratio_vs_bare.{}", ".3f")]
OVERHEAD_COLUMNS += [("cost (µs)", "cost_us.{}", "+.1f"), ("vs the peer", "vs_peer.{}", ".2f")]
SERVER_COLUMNS = [("requests/s", "{}.rps", ".0f"), ("vs bare", "{}.ratio_vs_bare", ".2f")]
SERVER_COLUMNS += [("p50 ms", "{}.p50_ms", ".2f"), ("p99 ms", "{}.p99_ms", ".2f")]
SERVER_COLUMNS += [("CPU µs/request", "{}.cpu_us", ".0f")]
SERVER_COLUMNS += [("vs bare, by CPU", "{}.cpu_ratio_vs_bare", ".2f")]
LOOP_COLUMNS = [("max lag (ms)", "{}.max_ms", ".1f"), ("p99 lag (ms)", "{}.p99_ms", ".2f")]
LOOP_COLUMNS += [("time (s)", "{}.s", ".2f")]
LATENCIES = [(op, p) for op in ("lookup", "login") for p in ("p50", "p99")]
SCALE_COLUMNS = [(f"{op} {p} (µs)", f"{{}}.{op}.{p}", ".0f") for op, p in LATENCIES]
SCALE_COLUMNS += [("longest write-lock hold (ms)", "{}.lock_max_ms", ".1f")]
SCALE_COLUMNS += [("purged rows/s", "{}.purge_per_s", ",.0f")]
SCALE_COLUMNS += [("bytes/session", "{}.bytes_per_session", ".0f")]


def grid(first: str, rows: Iterable[str], parts: Dict[str, Any], columns: Columns) -> str:
    """A row per name of ``rows``, and per part, side by side, a column per (header, path,
    format) of ``columns``: the path, with the row's name in it, leads to a part's figure."""
    header = [first, *(f"{label} {head}".strip() for label in parts for head, _, _ in columns)]
    cells = [(data, path, spec) for data in parts.values() for _, path, spec in columns]
    body = [[row, *(n(get(data, path.format(row)), f) for data, path, f in cells)] for row in rows]
    return table(header, body)


def overhead_table(o: Dict[str, Any]) -> str:
    """A row per variant, the frameworks' figures side by side."""
    parts = {f"{framework.title()}:": o[framework] for framework in FRAMEWORKS if framework in o}
    variants = dict.fromkeys(v for part in parts.values() for v in part["us_per_request"])
    return grid("variant", variants, parts, OVERHEAD_COLUMNS)


def redis_table(rc: Dict[str, Any]) -> str:
    def which(commands: Dict[str, float]) -> str:
        return ", ".join(f"{command.upper()} {count:g}" for command, count in commands.items())

    rows = [[name, f"{v['total']:.2f}", which(v["commands"])] for name, v in rc.items()]
    return table(["operation", "commands", "which"], rows)


def logins_table(results: Dict[str, Any]) -> str:
    def cell(item: Dict[str, Any]) -> str:
        cpu = f"; CPU {item['cpu_ms_app_process']:.2f} ms" if "cpu_ms_app_process" in item else ""
        failed = f"; {item['failed']} failed" if item.get("failed") else ""
        return f"{item['rate']:.0f}/s ({item['of_ideal']:.2f}){cpu}{failed}"

    al, wl = results.get("asgi_logins", {}), results.get("wsgi_logins", {})
    setups, drivers = ("bare", "memory", "sqlite"), [d for d in ("direct", "httpx") if d in al]
    rows = [[f"ASGI in process, driver: {d}", *(cell(al[d][s]) for s in setups)] for d in drivers]
    if wl:
        rows.append([f"WSGI, {wl['server']}", cell(wl["bare"]), "-", cell(wl["sqlite"])])
    return table(["setup", "bare", "memory store", "SQLite store"], rows)


def servers_table(sv: Dict[str, Any]) -> str:
    """A row per variant, the servers' figures side by side."""
    parts = {f"{sv[fw]['server'].split()[0]}:": sv[fw] for fw in FRAMEWORKS if fw in sv}
    variants = ["bare", *(v for store in STORES for v in (store, f"floor_{store}"))]
    return grid("variant", variants, parts, SERVER_COLUMNS)


def loop_table(sl: Dict[str, Any]) -> str:
    setups = [name for name, figures in sl.items() if isinstance(figures, dict)]
    return grid("store, other writer", setups, {"": sl}, LOOP_COLUMNS)


def scale_table(sc: Dict[str, Any]) -> str:
    """A row per size, the stores' figures side by side."""
    sizes = dict.fromkeys(size for by_size in sc.values() for size in by_size if size != "ratios")
    parts = {f"{store}:": by_size for store, by_size in sc.items()}
    return grid("sessions", sizes, parts, SCALE_COLUMNS)


# --- RESULTS.md ---
def fill(template: str, results: Dict[str, Any], baseline: Optional[Dict[str, Any]]) -> str:
    """The template with each ``{{path:format}}`` replaced by that figure of ``results`` (a
    path into results.json, or the name of a table or of a text computed here)."""

    def drawn(draw: Callable[[Any], str], part: str) -> str:  # "-" for a part not run
        return draw(results[part]) if part in results else "-"

    failures = results.get("failures", {}).items()
    before = {goal: row[1] for goal, row in goals(baseline or {}).items()}
    rows = [[goal, row[0], before[goal], *row[1:]] for goal, row in goals(results).items()]
    columns = ["goal", "target", "before", "after", "status", "floor", "ours / floor"]
    texts = {
        "machine": "; ".join(f"{key} {value}" for key, value in results["machine"].items()),
        "baseline": (baseline or {}).get("started", "-"),
        "failures": "".join(f"\n**Failed:** {part}: {error}\n" for part, error in failures),
        "goals_table": table(columns, rows),
        "logins_table": logins_table(results),
        "overhead_table": drawn(overhead_table, "overhead"),
        "redis_table": drawn(redis_table, "redis_commands"),
        "servers_table": drawn(servers_table, "servers"),
        "loop_table": drawn(loop_table, "sqlite_loop"),
        "scale_table": drawn(scale_table, "scale"),
    }

    def figure(match: re.Match[str]) -> str:
        path, _, spec = match[1].partition(":")
        return texts[path] if path in texts else n(get(results, path), spec)

    return re.sub(r"\{\{(.+?)\}\}", figure, template)


# --- the chart ---
COLOURS = {"Flask": "#4C72B0", "Starlette": "#DD8452", "before": "#BBBBBB", "after": "#55A868"}
COLOURS["floor"], COLOURS["Django"] = "#777777", "#8172B3"
Series = List[Tuple[str, List[float]]]


def bars(ax: Any, title: str, labels: Sequence[str], series: Series, spec: str = ".2f") -> None:
    """Grouped bars, one group per label, one bar per series, each with its value on top."""
    width = 0.8 / len(series)
    for index, (name, values) in enumerate(series):
        offset = (index - (len(series) - 1) / 2) * width
        xs = [i + offset for i in range(len(labels))]
        drawn = ax.bar(xs, values, width=width, label=name, color=COLOURS.get(name))
        ax.bar_label(drawn, [format(v, spec) if v else "" for v in values], fontsize=7)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def chart(results: Dict[str, Any], baseline: Optional[Dict[str, Any]]) -> None:
    """The cost per request in process against the peers', and the goals before, after and
    for their floors (the ratios to the bare app in process and over servers, the logins)."""
    import matplotlib.pyplot as plt

    plt.switch_backend("Agg")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 10), height_ratios=(1, 1.2))
    machine = results.get("machine", {})
    title = f"wxmiddleware benchmarks — {results.get('started')}, {machine.get('cores')} cores"
    fig.suptitle(f"{title}, Python {machine.get('python')}", fontsize=12)
    variants = [*STORES, "flask_session_redis", "starlette_session", "remote_user_peer"]
    costs = [(fw.title(), [get(results, f"overhead.{fw}.cost_us.{v}") or 0 for v in variants])
             for fw in FRAMEWORKS]  # fmt: skip
    bars(top, "In process: cost per request, ours vs peers", variants, costs, ".0f")
    top.set(yscale="log", ylabel="µs added to the bare request (log)")
    aims = [goal for goal in GOALS if goal[2] is not None]  # the goals with a target
    series = [("after", [get(results, path) or 0 for _, path, _ in aims])]
    if baseline:
        series.insert(0, ("before", [get(baseline, path) or 0 for _, path, _ in aims]))
    series.append(("floor", [figures(results, floor_path(path))[0] or 0 for _, path, _ in aims]))
    when = f"baseline of {baseline.get('started')}" if baseline else "no baseline"
    labels = [textwrap.fill(goal, 12) for goal, _, _ in aims]
    bars(bottom, f"Goals, before ({when}), after (this run) and the floor", labels, series)
    bottom.tick_params(axis="x", labelsize=7)
    for index, (_, _, low) in enumerate(aims):
        bottom.hlines(low, index - 0.45, index + 0.45, color="black", linewidth=1.5)
    bottom.set(ylim=(0, 1.12), ylabel="ratio (goal: black line)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(CHART, dpi=100)
    plt.close(fig)


def load(path: Path) -> Optional[Dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: Sequence[str] = ()) -> None:
    results = load(Path(argv[0]) if argv else RESULTS_JSON)
    if results is None:
        raise SystemExit("no results.json: run benchmarks/run_all.py first")
    baseline = load(BASELINE_JSON)
    if baseline is not None and baseline.get("started") == results.get("started"):
        baseline = None  # the baseline is this run: nothing to compare
    RESULTS_MD.write_text(fill(TEMPLATE.read_text(), results, baseline))
    print(f"wrote {RESULTS_MD}")
    try:
        chart(results, baseline)
        print(f"wrote {CHART}")
    except ImportError:
        print("no chart: matplotlib is not installed (pip install -r benchmarks/requirements.txt)")


if __name__ == "__main__":
    main(sys.argv[1:])
