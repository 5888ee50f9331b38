"""Login rate limits (issue 21): a client over the limit gets 429 with Retry-After before
WeChat is called or anything is written; X-Forwarded-For counts only behind trusted
proxies (werkzeug ProxyFix's rule); an app-wide budget; both adapters."""

from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple

import pytest

from wxmiddleware import WxConfig
from wxmiddleware.errors import ConfigError
from wxmiddleware.testing import FakeWeChat

from ..middleware.drivers import Driver, assert_error
from ..middleware.stubs import WSGI
from .support import RecordingObserver

pytest.importorskip("limits")

PEER = "127.0.0.1"  # httpx's ASGI transport reports it; WebTest is given it


def limited_app(make_app: Callable[..., Driver], adapter: str, **options: Any) -> Driver:
    app = make_app(**options)
    if adapter == WSGI:
        app.client.extra_environ["REMOTE_ADDR"] = PEER  # type: ignore[attr-defined]
    return app


def login(app: Driver, fake: FakeWeChat, headers: Sequence[Tuple[str, str]] = ()) -> Any:
    return app.post("/wx/login", json={"code": fake.issue_code()}, headers=headers)


def test_over_the_limit_is_429_without_wechat_or_store(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, adapter: str
) -> None:
    observer = RecordingObserver()
    rejected: List[str] = []
    app = limited_app(
        make_app,
        adapter,
        login_rate_limit="2/minute",
        observers=[observer],
        on_reject=lambda reason, request: rejected.append(reason),
    )
    assert login(app, fake_wechat).status == 200
    assert login(app, fake_wechat).status == 200
    calls = fake_wechat.jscode2session_calls
    store_ops = len([a for a in observer.activities if a.kind == "store"])
    reply = login(app, fake_wechat)
    assert_error(reply, 429, "rate_limited")
    assert 1 <= int(reply.headers["retry-after"]) <= 60
    assert fake_wechat.jscode2session_calls == calls  # WeChat never saw it
    assert len([a for a in observer.activities if a.kind == "store"]) == store_ops  # no write
    assert rejected == ["rate_limited"]
    assert ("rate_limited", 429) in observer.of("rejected")
    assert observer.of("login")[-1] == ("rate_limited", None)


def test_forwarded_for_is_ignored_without_trusted_proxies(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, adapter: str
) -> None:
    app = limited_app(make_app, adapter, login_rate_limit="1/minute")
    assert login(app, fake_wechat, [("X-Forwarded-For", "198.51.100.1")]).status == 200
    # Another "client" by the header, the same peer: the header is anyone's to write.
    reply = login(app, fake_wechat, [("X-Forwarded-For", "198.51.100.2")])
    assert_error(reply, 429, "rate_limited")
    assert fake_wechat.jscode2session_calls == 1


def test_behind_trusted_proxies_the_proxys_value_counts(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, adapter: str
) -> None:
    app = limited_app(make_app, adapter, login_rate_limit="1/minute", trusted_proxies=1)
    # The proxy appends the address it saw; what the client wrote before it is not trusted.
    assert login(app, fake_wechat, [("X-Forwarded-For", "1.1.1.1, 198.51.100.1")]).status == 200
    assert login(app, fake_wechat, [("X-Forwarded-For", "1.1.1.1, 198.51.100.2")]).status == 200
    spoofed = login(app, fake_wechat, [("X-Forwarded-For", "9.9.9.9, 198.51.100.1")])
    assert_error(spoofed, 429, "rate_limited")
    # No header (or fewer values than proxies): the peer address, as ProxyFix does.
    assert login(app, fake_wechat).status == 200
    assert_error(login(app, fake_wechat), 429, "rate_limited")


def test_an_underscore_spelling_does_not_stand_in_for_the_header() -> None:
    # WSGI servers drop headers spelt with "_" (gunicorn, werkzeug, waitress); the ASGI
    # adapter reads X-Forwarded-For by its real name only, repeats joined in order.
    from wxmiddleware._asgi_scope import ScopeHeaders
    from wxmiddleware.core import HeaderNames

    config = WxConfig(appid="wx1", secret="s", login_rate_limit="1/minute", trusted_proxies=1)
    headers = ScopeHeaders(HeaderNames.for_config(config), (), ("x-forwarded-for",))
    read = headers.read(
        [
            (b"x-forwarded-for", b"198.51.100.1"),
            (b"x_forwarded_for", b"198.51.100.9"),
            (b"X-Forwarded-For", b"198.51.100.2"),
        ]
    )
    assert read == {"x-forwarded-for": "198.51.100.1,198.51.100.2"}


def test_the_app_budget_counts_every_client(
    make_app: Callable[..., Driver], fake_wechat: FakeWeChat, adapter: str
) -> None:
    app = limited_app(make_app, adapter, app_login_rate_limit="2/minute", trusted_proxies=1)
    for client in ("198.51.100.1", "198.51.100.2"):
        assert login(app, fake_wechat, [("X-Forwarded-For", client)]).status == 200
    reply = login(app, fake_wechat, [("X-Forwarded-For", "198.51.100.3")])
    assert_error(reply, 429, "rate_limited")
    assert "retry-after" in reply.headers


def test_configuration(fake_wechat: FakeWeChat) -> None:
    env = {
        "WX_APPID": fake_wechat.appid,
        "WX_SECRET": fake_wechat.secret,
        "WX_LOGIN_RATE_LIMIT": "10/minute;100/day",
        "WX_APP_LOGIN_RATE_LIMIT": "1000 per hour",
        "WX_TRUSTED_PROXIES": "2",
        "WX_RATE_LIMIT_STORAGE": "memory://",
    }
    config = WxConfig.from_env(env)
    assert config.login_rate_limit == "10/minute;100/day"
    assert config.app_login_rate_limit == "1000 per hour"
    assert config.trusted_proxies == 2
    assert config.rate_limit_storage == "memory://"
    with pytest.raises(ConfigError, match="login_rate_limit"):
        WxConfig(appid=fake_wechat.appid, secret="s", login_rate_limit="ten a minute")
    with pytest.raises(ConfigError, match="trusted_proxies"):
        WxConfig(appid=fake_wechat.appid, secret="s", trusted_proxies=-1)


def test_a_limit_storage_that_is_down_is_503_and_no_error_line(
    make_app: Callable[..., Driver],
    fake_wechat: FakeWeChat,
    adapter: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("redis")
    app = limited_app(
        make_app,
        adapter,
        login_rate_limit="5/minute",
        rate_limit_storage="redis://127.0.0.1:1/0",  # nothing listens there
    )
    calls = fake_wechat.jscode2session_calls
    code = fake_wechat.issue_code()
    with caplog.at_level("DEBUG", logger="wxmiddleware"):
        reply = app.post("/wx/login", json={"code": code})
    assert_error(reply, 503, "store_unavailable")
    assert fake_wechat.jscode2session_calls == calls  # the code was not spent
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert code not in caplog.text


def test_per_client_counters_are_kept_apart_per_app() -> None:
    pytest.importorskip("redis")
    from tests.redis_support import SHARED_URL, shared_client, unique_prefix
    from wxmiddleware._ratelimit import LoginLimiter

    client = shared_client()
    apps = [f"wx{unique_prefix().strip(':')}" for _ in range(2)]
    limiters = [
        LoginLimiter(
            WxConfig(appid=appid, secret="s", login_rate_limit="1/minute",
                     rate_limit_storage=SHARED_URL)
        )
        for appid in apps
    ]  # fmt: skip
    try:
        assert limiters[0].hit(PEER) is None
        assert limiters[1].hit(PEER) is None  # one Redis, the same client: another budget
        assert limiters[0].hit(PEER) is not None
    finally:
        for appid in apps:
            for key in client.scan_iter(match=f"*{appid}*"):
                client.delete(key)
        client.close()


def test_counters_live_in_the_stores_redis() -> None:
    from wxmiddleware._ratelimit import storage_url

    redis = WxConfig(appid="wx1", secret="s", store="redis://cache:6379/2")
    assert storage_url(redis, asynchronous=False) == "redis://cache:6379/2"
    assert storage_url(redis, asynchronous=True) == "async+redis://cache:6379/2"
    sqlite = WxConfig(appid="wx1", secret="s", store="sqlite:///x.db")
    assert storage_url(sqlite, asynchronous=False) == "memory://"
    own = WxConfig(appid="wx1", secret="s", rate_limit_storage="redis://other:6379/0")
    assert storage_url(own, asynchronous=True) == "async+redis://other:6379/0"


def test_core_imports_no_operations_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, wxmiddleware.core, wxmiddleware.observe, wxmiddleware.wsgi;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " {'prometheus_client', 'opentelemetry', 'limits'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
