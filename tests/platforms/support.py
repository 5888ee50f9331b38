"""One app per platform on the fake, and the requests a mini-program of each sends."""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from wxmiddleware import WxConfig
from wxmiddleware._apps import WxApp
from wxmiddleware.testing import FakeWeChat
from wxmiddleware.testing.platforms import api_bases

from ..middleware.drivers import Driver, Reply, app_config

PLATFORMS = ["qq", "douyin", "baidu", "kuaishou", "alipay"]

#: An appid of each platform's shape, and a secret (Alipay's keys come from the fake).
APPIDS = {
    "qq": "1110000001",
    "douyin": "tt0123456789abcdef",
    "baidu": "4fecoAqgCIUtzIyA4FAPgoyrc4oUc25c",
    "kuaishou": "ks671599294546520284",
    "alipay": "2021000000000001",
}
SECRETS = {name: f"{name}-secret-0123456789" for name in PLATFORMS}


class PlatformApp(NamedTuple):
    platform: str
    appid: str
    app: WxApp
    #: The secret or private key that must never leak.
    secret: str


def add_app(fake: FakeWeChat, platform: str, appid: Optional[str] = None) -> PlatformApp:
    """Serve an app of ``platform`` on the fake; its :class:`WxApp` for the middleware."""
    appid = appid or APPIDS[platform]
    private_key = fake.platforms.add_app(platform, appid, SECRETS[platform])
    if platform == "alipay":
        assert private_key is not None
        app = WxApp(appid, private_key, "alipay", fake.platforms.alipay_public_key)
        return PlatformApp(platform, appid, app, private_key)
    return PlatformApp(
        platform, appid, WxApp(appid, SECRETS[platform], platform), SECRETS[platform]
    )


def config_for(
    fake: FakeWeChat, *apps: PlatformApp, wechat: bool = False, **fields: Any
) -> WxConfig:
    """A configuration of ``apps`` (and the fake's WeChat app first with ``wechat``), every
    platform's API base pointed at the fake."""
    listed: List[WxApp] = [WxApp(fake.appid, fake.secret)] if wechat else []
    listed += [one.app for one in apps]
    fields.setdefault("appid", listed[0].appid)
    return app_config(fake, apps=listed, **api_bases(fake.url), **fields)


def headers_for(appid: str, several: bool) -> List[Tuple[str, str]]:
    return [("X-WX-Appid", appid)] if several else []


def login(
    app: Driver,
    code: str,
    appid: str,
    several: bool = False,
    anonymous_code: Optional[str] = None,
) -> Reply:
    body: Dict[str, str] = {"code": code}
    if anonymous_code is not None:
        body["anonymous_code"] = anonymous_code
    return app.post("/wx/login", json=body, headers=headers_for(appid, several))


def log_in(
    app: Driver, fake: FakeWeChat, one: PlatformApp, user: str = "alice", several: bool = False
) -> str:
    reply = login(app, fake.platforms.issue_code(one.appid, user), one.appid, several)
    assert reply.status == 200, reply.body
    token: str = reply.json()["3rd_session"]
    return token


def me(app: Driver, token: str, appid: str, several: bool = False) -> Reply:
    return app.get("/api/me", headers=[("3rd-session", token), *headers_for(appid, several)])
