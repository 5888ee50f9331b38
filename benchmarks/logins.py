"""Many logins at once against a slow WeChat (RESULTS.md, *Login throughput*): in process
through ``WxASGIMiddleware`` (``measure_asgi``) and through gunicorn (``measure_wsgi``); and the
event loop's lag on SQLite meanwhile (``loop_lag``, *SQLite and the event loop*). Run one alone
with ``python benchmarks/run_all.py --only asgi_logins`` (``wsgi_logins``, ``sqlite_loop``).
"""

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import _bench
import apps
import httpx
import servers
from _bench import Request

from wxmiddleware import AsyncMemoryStore, AsyncSQLiteStore, SQLiteStore, WxASGIMiddleware
from wxmiddleware.wechat.aio import AsyncWeChatClient


@dataclasses.dataclass
class Logins:
    """A round: ``concurrency`` clients log in ``per_client`` times each, back to back, while
    WeChat (the fake, in a process of its own) answers after ``latency`` seconds."""

    per_client: int = 5
    concurrency: int = 100
    latency: float = 0.1

    def round(
        self, fake: Any, login: Callable[..., Any], run: Any, port: int, cpu_of: Dict[str, Any]
    ) -> Dict[str, float]:
        """Logins/s (``run`` runs the clients), failed logins, and the CPU per login (ms) of
        each process of ``cpu_of`` (a pid; None: this process)."""
        codes = fake.codes(self.concurrency * self.per_client)

        def cpu() -> List[float]:
            pids = cpu_of.values()
            return [_bench.process_tree_cpu(p) if p else time.process_time() for p in pids]

        before = cpu()
        rate, failures = run(_bench.log_in_all(codes, self.concurrency, login, port))
        used = {name: 1000 * (b - a) / len(codes) for name, a, b in zip(cpu_of, before, cpu())}
        return {"rate": rate, "failed": len(failures), **used}

    def settings(self, rounds: int) -> Dict[str, Any]:
        """These, the rounds, and the ideal logins/s: concurrency ÷ latency."""
        ideal = self.concurrency / self.latency
        return {**dataclasses.asdict(self), "ideal": ideal, "rounds": rounds}

    def summary(self, runs: Dict[str, List[Dict[str, float]]]) -> Dict[str, Dict[str, float]]:
        """Per setup: the medians over rounds, the share of the ideal, the logins/s against
        the bare app's (per round), the failed logins in all."""
        results = {setup: _bench.medians(items) for setup, items in runs.items()}
        for setup, figures in results.items():
            figures["of_ideal"] = figures["rate"] * self.latency / self.concurrency
            figures["of_bare"] = _bench.ratio(runs, setup, "bare", "rate")
            figures["failed"] = sum(item["failed"] for item in runs[setup])
        return results


def measure_asgi(logins: Logins, rounds: int = 3) -> Dict[str, Any]:
    """The bare app, the memory and the SQLite store, called directly and through
    ``httpx.ASGITransport``; the CPU per login of this process."""
    loop = asyncio.new_event_loop()
    with _bench.FakeWeChatProcess(logins.latency) as fake, tempfile.TemporaryDirectory() as state:
        config, client = fake.config(), AsyncWeChatClient(fake.config())
        stores = {"memory": AsyncMemoryStore(), "sqlite": AsyncSQLiteStore(Path(state) / "db")}
        setups = {"bare": apps.login_only_asgi(client)}
        for name, store in stores.items():
            setups[name] = WxASGIMiddleware(apps.plain_asgi, config=config, store=store)

        def one_round(driver: str, app: Any) -> Dict[str, float]:
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")
            headers = dict(_bench.miniprogram_headers())

            async def login(_: Any, code: str) -> Any:
                if driver == "direct":
                    return await Request.login(code).to_asgi(app)
                answer = await http.post("/wx/login", json={"code": code}, headers=headers)
                return answer.status_code, answer.content

            try:
                run = loop.run_until_complete
                return logins.round(fake, login, run, 0, {"cpu_ms_app_process": None})
            finally:
                loop.run_until_complete(http.aclose())

        drivers, variants = ("direct", "httpx"), {}
        for driver, (name, app) in itertools.product(drivers, setups.items()):
            variants[driver, name] = functools.partial(one_round, driver, app)
        runs = _bench.interleaved(variants, rounds)
        for closable in (*stores.values(), client):
            loop.run_until_complete(_bench.aclose(closable))
    loop.close()
    by_driver = {d: logins.summary({s: runs[d, s] for s in setups}) for d in drivers}
    return {**logins.settings(rounds), **by_driver}


def measure_wsgi(logins: Logins, rounds: int = 3) -> Dict[str, Any]:
    """The Flask example (SQLite store) and its bare app under gunicorn gthread, 2 workers and
    a thread per client; the CPU per login of the server, the fake WeChat and the driver."""
    threads = -(-logins.concurrency // 2)
    options = ["-k", "gthread", "-w", "2", "--threads", str(threads)]
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(_bench.FakeWeChatProcess(logins.latency))
        state = stack.enter_context(tempfile.TemporaryDirectory())
        env = {**fake.env(), "WX_SESSION_STORE": f"sqlite:///{state}/wx.sqlite3"}
        variants = {}
        for variant, app in (("bare", "apps:bare_flask"), ("sqlite", "examples.flask_app:app")):
            served = servers.serve(stack, "gunicorn", app, *options, **env)
            cpu_of = {"server": served["pid"], "fake WeChat": fake.process.pid, "driver": None}
            login_round = functools.partial(logins.round, fake, _bench.Connection.login)
            variants[variant] = functools.partial(login_round, asyncio.run, served["port"], cpu_of)
        runs = _bench.interleaved(variants, rounds)
    server = f"gunicorn -k gthread -w 2 --threads {threads}"
    return {**logins.settings(rounds), "server": server, **logins.summary(runs)}


HOLDER = r"""import sqlite3, sys, time
conn, hold = sqlite3.connect(sys.argv[1], isolation_level=None), float(sys.argv[2])
print("ready", flush=True)
while True:  # take the write lock, keep it `hold` s, let go briefly
    conn.execute("BEGIN IMMEDIATE")
    time.sleep(hold)
    conn.execute("COMMIT")
    time.sleep(hold / 4)
"""


@contextlib.contextmanager
def other_writer(path: Path, hold: float) -> Iterator[None]:
    """Another process holding SQLite's write lock most of the time."""
    command = [_bench.PYTHON, "-c", HOLDER, str(path), str(hold)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield
    finally:
        _bench.stop(process)


async def lag(inline: bool, path: Path, fake: Any, tasks: int) -> Dict[str, float]:
    """``tasks`` clients log in at once, 5 requests each: a ticker's max and p99 lag (ms), s."""
    # AsyncMemoryStore runs each call of the store it wraps inline: here, SQLiteStore's.
    store = AsyncMemoryStore(SQLiteStore(path, timeout=10.0)) if inline else AsyncSQLiteStore(path)
    # The inline store stalls the loop for seconds: long timeouts, so WeChat calls wait it out.
    timeouts = {"connect_timeout": 60.0, "read_timeout": 60.0}
    app = WxASGIMiddleware(apps.plain_asgi, config=fake.config(**timeouts), store=store)

    async def client(code: str) -> None:
        token = _bench.token_of(*await Request.login(code).to_asgi(app))
        for _ in range(5):
            status, _ = await Request(token).to_asgi(app)
            assert status == 200, status

    await client(fake.codes(1)[0])  # opens the connections
    lags, done, codes = [], False, fake.codes(tasks)

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            lags.append(time.perf_counter() - last)
            last = time.perf_counter()

    ticking, started = asyncio.ensure_future(ticker()), time.perf_counter()
    await asyncio.gather(*(client(code) for code in codes))
    taken, done = time.perf_counter() - started, True
    await ticking
    await _bench.aclose(store)
    lags.sort()
    return {"max_ms": 1000 * lags[-1], "p99_ms": 1000 * lags[int(len(lags) * 0.99)], "s": taken}


def loop_lag(tasks: int = 200, hold: float = 0.2, runs: int = 3) -> Dict[str, Any]:
    """:func:`lag` on the synchronous store called inline and on ``AsyncSQLiteStore``, the
    database quiet or its write lock held by another process; medians of ``runs``."""
    results: Dict[str, Any] = {"tasks": tasks, "hold_ms": 1000 * hold, "runs": runs}
    with tempfile.TemporaryDirectory() as tmp, _bench.FakeWeChatProcess() as fake:
        for contended in (False, True):
            for kind in ("inline", "AsyncSQLiteStore"):
                samples = []
                for number in range(runs):
                    path = Path(tmp) / f"{kind}-{contended}-{number}.sqlite3"
                    SQLiteStore(path).close()  # the file and its schema
                    with other_writer(path, hold) if contended else contextlib.nullcontext():
                        samples.append(asyncio.run(lag(kind == "inline", path, fake, tasks)))
                name = f"{kind}, {'lock held' if contended else 'quiet'}"
                results[name] = _bench.medians(samples)
    return results
