"""Twenty concurrent logins with one code: one upstream call, one session, twenty equal answers."""

from __future__ import annotations

import json
import multiprocessing
import threading
from pathlib import Path
from typing import Any, Dict, List

import pytest

from wxmiddleware import MemoryStore, SQLiteStore, WxConfig, WxMiddleware
from wxmiddleware.testing import FakeWeChat

from .drivers import RecordingApp, wsgi_request


def config_for(fake: FakeWeChat) -> WxConfig:
    return WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url)


def login_once(middleware: WxMiddleware, code: str) -> Dict[str, Any]:
    body = json.dumps({"code": code}).encode()
    headers = [("Content-Type", "application/json")]
    answer = wsgi_request(middleware, RecordingApp(), "POST", "/wx/login", headers, body)
    return {"status": answer.status, "body": answer.json()}


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_twenty_threads(fake_wechat: FakeWeChat, tmp_path: Path, store_kind: str) -> None:
    fake_wechat.latency = 0.3
    store = MemoryStore() if store_kind == "memory" else SQLiteStore(tmp_path / "s.sqlite3")
    middleware = WxMiddleware(RecordingApp(), config=config_for(fake_wechat), store=store)
    code = fake_wechat.issue_code("alice")
    answers: List[Dict[str, Any]] = []
    barrier = threading.Barrier(20)

    def attempt() -> None:
        barrier.wait()
        answers.append(login_once(middleware, code))

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 20
    assert all(answer["status"] == 200 for answer in answers), answers
    assert len({answer["body"]["3rd_session"] for answer in answers}) == 1
    assert fake_wechat.jscode2session_calls == 1
    assert len(store.sessions_for(fake_wechat.openid_for("alice"))) == 1


def _worker(
    api_base: str, appid: str, secret: str, db: str, code: str, start: Any, out: Any
) -> None:
    config = WxConfig(appid=appid, secret=secret, api_base=api_base)
    middleware = WxMiddleware(RecordingApp(), config=config, store=SQLiteStore(db))
    start.wait()
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(login_once(middleware, code)))
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(results)


def test_four_processes_on_one_sqlite_file(fake_wechat: FakeWeChat, tmp_path: Path) -> None:
    fake_wechat.latency = 0.5
    code = fake_wechat.issue_code("alice")
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    out = context.Queue()
    db = str(tmp_path / "shared.sqlite3")
    processes = [
        context.Process(
            target=_worker,
            args=(fake_wechat.url, fake_wechat.appid, fake_wechat.secret, db, code, start, out),
        )
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    start.set()
    answers = [answer for _ in processes for answer in out.get(timeout=60)]
    for process in processes:
        process.join(timeout=30)
    assert len(answers) == 20
    assert all(answer["status"] == 200 for answer in answers), answers
    assert len({answer["body"]["3rd_session"] for answer in answers}) == 1
    assert fake_wechat.jscode2session_calls == 1
