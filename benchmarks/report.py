"""Fill ``RESULTS.md`` from ``RESULTS.template.md``, ``results.json`` and ``baseline.json``.

The template holds the prose; ``$name`` placeholders take a figure or a whole table computed
here. A figure that a results file lacks (an older file, a part that failed) shows as "-".

Run: ``python benchmarks/report.py [results.json]`` (run_all.py calls it after a run).
"""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

BENCH = Path(__file__).resolve().parent
RESULTS_JSON = BENCH / "results.json"
BASELINE_JSON = BENCH / "baseline.json"
TEMPLATE = BENCH / "RESULTS.template.md"
RESULTS_MD = BENCH / "RESULTS.md"


def get(data: Any, path: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; None where any step is missing."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def n(value: Optional[float], spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(header: Sequence[str], rows: List[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# goal, target, where in results.json, the minimum, the chart's label, where its floor is
# (the same ratio for a bare app with only the unavoidable work: see overhead.py)
RATIO_GOALS = [
    ("Flask + memory store, throughput vs bare (in process)", "≥ 0.95",
     "overhead.flask.ratio_vs_bare.memory", 0.95, "Flask + memory\nvs bare",
     "overhead.flask.ratio_vs_bare.floor"),
    ("Flask + memory store vs a before_request dict hook (in process)", "≥ 1.00",
     "overhead.flask.vs_peer.memory", 1.0, "Flask + memory\nvs hook",
     "overhead.flask.vs_peer.floor"),
    ("Starlette + memory store, throughput vs bare (in process)", "≥ 0.88",
     "overhead.starlette.ratio_vs_bare.memory", 0.88, "Starlette + memory\nvs bare",
     "overhead.starlette.ratio_vs_bare.floor"),
    ("Starlette + memory store vs AuthenticationMiddleware with a dict (in process)", "≥ 1.15",
     "overhead.starlette.vs_peer.memory", 1.15, "Starlette + memory\nvs auth",
     "overhead.starlette.vs_peer.floor"),
    ("Flask: SQLite store throughput vs memory store (in process)", "≥ 0.85",
     "overhead.flask.sqlite_vs_memory", 0.85, "Flask\nSQLite / memory", None),
    ("Starlette: SQLite store throughput vs memory store (in process)", "≥ 0.85",
     "overhead.starlette.sqlite_vs_memory", 0.85, "Starlette\nSQLite / memory", None),
    *((f"{server}, {store} store, throughput vs bare", f"≥ {minimum:.2f}",
       f"servers.{fw}.{store}.ratio_vs_bare", minimum, None, f"servers.{fw}.floor.ratio_vs_bare")
      for fw, server in (("flask", "gunicorn"), ("starlette", "uvicorn"))
      for store, minimum in (("memory", 0.97), ("redis", 0.97), ("sqlite", 0.93))),
    *((f"ASGI logins, {store} store, {driver} driver, of concurrency ÷ latency", "≥ 0.80",
       f"asgi_logins.{driver}.{store}.of_ideal", 0.8, f"ASGI logins\n{store}, {driver}", None)
      for driver, store in (("direct", "memory"), ("direct", "sqlite"), ("httpx", "sqlite"))),
    ("WSGI logins, gunicorn gthread, SQLite store, of concurrency ÷ latency", "(0.80)",
     "wsgi_logins.of_ideal.sqlite", 0.8, "WSGI logins\nSQLite, gunicorn", None),
]


STORES_VS_PEER = ("redis", "flask_session_redis")


def goals(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The goal rows: label, target, figure as text and number (for the chart), met, and
    the floor's figure where one is measured."""
    rows = []
    for goal, target, path, minimum, chart, floor in RATIO_GOALS:
        value = get(results, path)
        met = None if value is None else value >= minimum
        rows.append({"goal": goal, "target": target, "value": n(value, ".3f"), "number": value,
                     "met": met, "chart": chart, "goal_number": minimum,
                     "floor": n(get(results, floor) if floor else None, ".3f")})
    ours, peer = (get(results, f"overhead.flask.cost_us.{k}") for k in STORES_VS_PEER)
    commands = get(results, "redis_commands.wsgi_request.total")
    rows[6:6] = [
        {"goal": "Flask: RedisStore cost per request < Flask-Session's Redis backend",
         "target": "ours < peer", "value": f"{n(ours, '.0f')} µs vs {n(peer, '.0f')} µs",
         "met": None if ours is None or peer is None else ours < peer, "chart": None,
         "floor": "-"},
        {"goal": "Redis commands per authenticated request", "target": "1", "value": n(commands),
         "met": None if commands is None else abs(commands - 1) < 1e-9, "chart": None,
         "floor": "-"},
    ]
    return rows


def status(row: Dict[str, Any]) -> str:
    return "not measured" if row["value"].startswith("-") else "met" if row["met"] else "not met"


def goals_text(results: Dict[str, Any]) -> str:
    """The measured goals as lines of text (what the benchmark scripts print)."""
    return "\n".join(
        f"{status(r):>8}: {r['goal']}: {r['value']} ({r['target']})"
        + (f"; floor {r['floor']}" if r["floor"] != "-" else "")
        for r in goals(results) if not r["value"].startswith("-")
    )


def goals_table(results: Dict[str, Any], baseline: Optional[Dict[str, Any]]) -> str:
    before = {row["goal"]: row["value"] for row in goals(baseline)} if baseline else {}
    rows = [[r["goal"], r["target"], before.get(r["goal"], "-") if baseline else r["value"],
             r["value"] if baseline else "_pending_", status(r), r["floor"]]
            for r in goals(results)]
    return table(["goal", "target", "before", "after", "status", "floor"], rows)


LABELS = {
    "bare": "bare app", "memory": "wrapped, memory store",
    "sqlite": "wrapped, SQLite store (default)", "redis": "wrapped, Redis store (loopback)",
    "flask_session_redis": "peer: Flask-Session, Redis",
    "hook_peer": "peer: a before_request hook over a dict",
    "auth_peer": "peer: Starlette AuthenticationMiddleware, dict backend",
    "floor": "floor: header -> dict -> attach, by hand",
    "starlette_session": "peer: Starlette SessionMiddleware (signed cookie)",
    "wsgi_request": "authenticated request, WxMiddleware + RedisStore",
    "asgi_request": "authenticated request, WxASGIMiddleware + AsyncRedisStore",
    "wsgi_login": "login (WSGI)", "wsgi_logout": "logout (WSGI)",
    "flask_session_request": "request, Flask-Session on Redis (peer)",
}


def overhead_tables(o: Dict[str, Any]) -> str:
    parts = []
    for framework in (fw for fw in ("flask", "starlette") if fw in o):
        data = o[framework]
        vs_peer = data.get("vs_peer", {})
        rows = [[LABELS.get(name, name), f"{micros:.1f}",
                 n(data["ratio_vs_bare"].get(name, 1.0), ".3f"),
                 n(data["cost_us"].get(name, 0.0), "+.1f"), n(vs_peer.get(name), ".2f")]
                for name, micros in data["us_per_request"].items()]
        if "sqlite_vs_memory" in data:
            rows.append(["SQLite / memory throughput", "", f"{data['sqlite_vs_memory']:.3f}", "",
                         ""])
        header = ["variant", "µs/request", "throughput vs bare", "cost (µs)", "vs the peer"]
        parts.append(f"**{framework.title()}**\n\n" + table(header, rows))
    return "\n\n".join(parts)


def redis_table(rc: Dict[str, Any]) -> str:
    rows = [[LABELS.get(key, key), f"{item['total']:.2f}",
             ", ".join(f"{c.upper()} {v:g}" for c, v in item["commands"].items())]
            for key, item in rc.items()]
    return table(["operation", "commands", "which"], rows)


def logins_table(al: Dict[str, Any], wl: Dict[str, Any]) -> str:
    def cell(item: Dict[str, Any]) -> str:
        cpu = f"; CPU {item['cpu_ms_app_process']:.2f} ms" if "cpu_ms_app_process" in item else ""
        return f"{item['rate']:.0f}/s ({item['of_ideal']:.2f}){cpu}"

    rows = [[f"ASGI in process, driver: {driver}"]
            + [cell(al[driver][setup]) for setup in ("bare", "memory", "sqlite")]
            for driver in ("direct", "httpx") if driver in al]
    if wl:
        failed = get(wl, "failed.sqlite")
        wsgi = [cell({"rate": wl["rates"][v], "of_ideal": wl["of_ideal"][v]})
                for v in ("bare", "sqlite")]
        wsgi[1] += f"; {failed} of {wl['attempted']} failed (503)" if failed else ""
        rows.append([f"WSGI, {wl['server']}", wsgi[0], "-", wsgi[1]])
    return table(["setup", "bare", "memory store", "SQLite store"], rows)


def servers_table(sv: Dict[str, Any]) -> str:
    rows = [[sv[fw]["server"], variant, f"{item['rps']:.0f}", n(item.get("ratio_vs_bare", 1.0)),
             f"{item['p50_ms']:.2f}", f"{item['p99_ms']:.2f}", f"{item['cpu_us']:.0f}",
             n(item.get("cpu_ratio_vs_bare", 1.0))]
            for fw in ("flask", "starlette")
            for variant, item in ((v, sv[fw][v]) for v in ("bare", "sqlite", "memory", "redis")
                                  if v in sv[fw])]
    header = ["server", "variant", "requests/s", "vs bare", "p50 ms", "p99 ms",
              "server CPU µs/request", "vs bare, by CPU"]
    return table(header, rows)


def loop_table(sl: Dict[str, Any]) -> str:
    rows = [[name, f"{v['max_ms']:.1f}", f"{v['p99_ms']:.2f}", f"{v['s']:.2f}"]
            for name, v in sl.items() if isinstance(v, dict)]
    return table(["store, other writer", "max lag (ms)", "p99 lag (ms)", "time (s)"], rows)


def scale_table(sc: Dict[str, Any]) -> str:
    rows = []
    for store, by_size in sc.items():
        for size, v in by_size.items():
            if size == "ratios":
                continue
            lookup, login = v["lookup"], v["login"]
            rows.append([store, f"{int(size):,}", f"{lookup['p50']:.0f} / {lookup['p99']:.0f}",
                         f"{login['p50']:.0f} / {login['p99']:.0f}",
                         n(v.get("lock_max_ms"), ".1f"), n(v.get("purge_per_s"), ",.0f"),
                         v["bytes_per_session"]])
        r = by_size.get("ratios", {})
        rows.append([store, "largest / smallest", n(r.get("lookup_p99"), ".2f") + " (p99)",
                     n(r.get("login_p99"), ".2f") + " (p99)", "", "", ""])
    header = ["store", "sessions", "lookup p50 / p99 (µs)", "login p50 / p99 (µs)",
              "longest write-lock hold (ms)", "purged rows/s", "bytes/session"]
    return table(header, rows)


class Figures(dict):  # type: ignore[type-arg]
    """Placeholders: a figure missing from the results reads "-"."""

    def __missing__(self, key: str) -> str:
        return "-"


def figures(results: Dict[str, Any], baseline: Optional[Dict[str, Any]]) -> Figures:
    r, f = results, Figures()
    compared = baseline is not None and baseline.get("started") != r.get("started")
    f.update(
        started=r.get("started", "-"), seconds=n(r.get("seconds"), ".0f"),
        quick=" (`--quick`)" if r.get("quick") else "",
        machine_table=table(["machine", ""], list(r.get("machine", {}).items())),
        baseline_started=(baseline or {}).get("started", "-"),
        goals_table=goals_table(r, baseline if compared else None),
        failures="".join(f"\n**Failed:** {k}: {v}\n" for k, v in r.get("failures", {}).items()),
        rounds=get(r, "overhead.rounds"), requests=get(r, "overhead.requests_per_round"),
        rtt=n(r.get("loopback_rtt_us"), ".0f"), ideal=n(get(r, "asgi_logins.ideal"), ".0f"),
        load_generator=get(r, "servers.load_generator"), connections=get(r, "servers.connections"),
        loop_tasks=get(r, "sqlite_loop.tasks"), loop_hold=n(get(r, "sqlite_loop.hold_ms"), ".0f"),
    )
    for fw in ("flask", "starlette"):
        f[f"{fw}_bare_us"] = n(get(r, f"overhead.{fw}.us_per_request.bare"), ".1f")
        f[f"{fw}_memory_us"] = n(get(r, f"overhead.{fw}.cost_us.memory"), ".1f")
        f[f"{fw}_floor_us"] = n(get(r, f"overhead.{fw}.cost_us.floor"), ".1f")
    for name, build, key in (
        ("overhead_tables", overhead_tables, "overhead"), ("loop_table", loop_table, "sqlite_loop"),
        ("redis_table", redis_table, "redis_commands"), ("servers_table", servers_table, "servers"),
        ("scale_table", scale_table, "scale"),
    ):
        f[name] = build(r[key]) if r.get(key) else None
    if r.get("asgi_logins") or r.get("wsgi_logins"):
        f["logins_table"] = logins_table(r.get("asgi_logins", {}), r.get("wsgi_logins", {}))
    shares = get(r, "wsgi_logins.cpu_ms_per_login") or {}
    f["wsgi_cpu"] = "; ".join(
        f"{variant}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in by_process.items())
        for variant, by_process in shares.items()
    )
    return Figures({key: "-" if value is None else str(value) for key, value in f.items()})


def write(results: Dict[str, Any], baseline: Optional[Dict[str, Any]]) -> None:
    template = string.Template(TEMPLATE.read_text())
    RESULTS_MD.write_text(template.substitute(figures(results, baseline)))


def load(path: Path) -> Optional[Dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: Sequence[str] = ()) -> None:
    results = load(Path(argv[0]) if argv else RESULTS_JSON)
    if results is None:
        raise SystemExit("no results.json: run benchmarks/run_all.py first")
    write(results, load(BASELINE_JSON))
    print(f"wrote {RESULTS_MD}")


if __name__ == "__main__":
    main(sys.argv[1:])
