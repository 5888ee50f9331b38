"""Configuration of apps of every platform (issue 25): WX_APPS entries that name their
platform, each platform's API base, the appid shape check per platform, Alipay's keys, and
no secret or key in any error."""

from __future__ import annotations

import base64
from typing import Any, Dict

import pytest

from wxmiddleware import WxConfig
from wxmiddleware._apps import PLATFORM_INFO, WxApp
from wxmiddleware.errors import ConfigError
from wxmiddleware.testing.platforms import FakePlatforms, api_base_env

from .support import APPIDS, SECRETS

WECHAT = "wx0123456789abcdef"


@pytest.fixture(scope="module")
def alipay_keys() -> Dict[str, str]:
    fake = FakePlatforms(lambda: "k")
    private_key = fake.add_app("alipay", APPIDS["alipay"])
    assert private_key is not None
    return {"private": private_key, "public": fake.alipay_public_key}


def test_wx_apps_entries_name_their_platform(alipay_keys: Dict[str, str]) -> None:
    entries = [f"{WECHAT}:wechat-secret-0123456789"]
    entries += [
        f"{name}:{APPIDS[name]}:{SECRETS[name]}" for name in ("qq", "douyin", "baidu", "kuaishou")
    ]
    entries.append(f"alipay:{APPIDS['alipay']}:{alipay_keys['private']}:{alipay_keys['public']}")
    config = WxConfig.from_env({"WX_APPS": ",".join(entries)})
    assert [app.platform for app in config.apps] == [
        "wechat",
        "qq",
        "douyin",
        "baidu",
        "kuaishou",
        "alipay",
    ]
    assert config.platform == "wechat"  # the first app is the default
    douyin = config.for_app(APPIDS["douyin"])
    assert (douyin.platform, douyin.secret) == ("douyin", SECRETS["douyin"])
    alipay = config.for_app(APPIDS["alipay"])
    assert alipay.public_key == alipay_keys["public"] and alipay.secret == alipay_keys["private"]
    # wechat: may be written out too; a single app of another platform needs no WX_APPS list.
    assert WxConfig.from_env({"WX_APPS": f"wechat:{WECHAT}:s"}).platform == "wechat"
    single = WxConfig.from_env(
        {"WX_APPID": APPIDS["qq"], "WX_SECRET": SECRETS["qq"], "WX_PLATFORM": "qq"}
    )
    assert (single.platform, single.multi_app) == ("qq", False)


def test_each_platforms_api_base_comes_from_the_environment() -> None:
    env = {
        "WX_APPS": f"douyin:{APPIDS['douyin']}:{SECRETS['douyin']}",
        **api_base_env("http://127.0.0.1:9"),
    }
    config = WxConfig.from_env(env)
    for name, info in PLATFORM_INFO.items():
        if name != "wechat":
            assert config.api_base_of(name) == f"http://127.0.0.1:9/{name}"
            assert info.api_base_variable == f"WX_API_BASE_{name.upper()}"
    defaults = WxConfig(appid=WECHAT, secret="s")
    assert defaults.api_base_of("douyin") == "https://developer.toutiao.com"
    assert defaults.api_base_of("alipay") == "https://openapi.alipay.com"
    assert defaults.api_base_of("wechat") == "https://api.weixin.qq.com"
    with pytest.raises(ConfigError, match="api_base_qq must be an http"):
        WxConfig(appid=WECHAT, secret="s", api_base_qq="ftp://example.com")


@pytest.mark.parametrize("platform", ["qq", "douyin", "baidu", "kuaishou"])
def test_the_appid_check_knows_each_platforms_shape(platform: str) -> None:
    good = {"WX_APPS": f"{platform}:{APPIDS[platform]}:{SECRETS[platform]}"}
    assert WxConfig.from_env(good).platform == platform
    single = {"WX_APPID": APPIDS[platform], "WX_SECRET": SECRETS[platform], "WX_PLATFORM": platform}
    assert WxConfig.from_env(single).appid == APPIDS[platform]
    # Another platform's appid is refused, with its shape named; WX_APPID_CHECK=0 lets it be.
    wrong = {"WX_APPS": f"{platform}:abc123:{SECRETS[platform]}"}
    with pytest.raises(ConfigError, match=PLATFORM_INFO[platform].title) as raised:
        WxConfig.from_env(wrong)
    assert SECRETS[platform] not in str(raised.value)
    assert WxConfig.from_env({**wrong, "WX_APPID_CHECK": "0"}).platform == platform
    # A WeChat-shaped check still holds for a WeChat app.
    with pytest.raises(ConfigError, match="WeChat mini-program appid"):
        WxConfig.from_env({"WX_APPID": APPIDS[platform], "WX_SECRET": "s"})


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ({"appid": APPIDS["douyin"], "platform": "douyin"}, "needs its secret"),
        ({"appid": APPIDS["alipay"], "platform": "alipay"}, "needs its private key"),
        (
            {
                "appid": APPIDS["qq"],
                "secret": "s3cr3t-qq-0123",
                "platform": "qq",
                "public_key": "x",
            },
            "only an Alipay app",
        ),
        (
            {"appid": APPIDS["qq"], "secret": "s3cr3t-qq-0123", "platform": "weixin"},
            "not supported",
        ),
    ],
)
def test_an_app_without_its_credentials_is_refused_at_start_up(
    app: Dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        WxConfig(apps=[app])
    assert "s3cr3t" not in str(raised.value)


def test_alipay_keys_are_checked_and_never_echoed(alipay_keys: Dict[str, str]) -> None:
    private, public = alipay_keys["private"], alipay_keys["public"]
    app = WxApp(APPIDS["alipay"], private, "alipay", public)
    assert private not in repr(app) and public not in repr(app)
    # PEM works as well as Alipay's bare base64.
    pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        + "\n".join(public[i : i + 64] for i in range(0, len(public), 64))
        + "\n-----END PUBLIC KEY-----\n"
    )
    assert WxApp(APPIDS["alipay"], private, "alipay", pem).public_key == pem.strip()
    short = base64.b64encode(b"\x00" * 40).decode()
    for secret, key, message in [
        (private, "", "needs Alipay's public key"),
        (private, short, "Alipay public key of the Alipay app"),
        (short, public, "private key of the Alipay app"),
        (private, private, "Alipay public key of the Alipay app"),
    ]:
        with pytest.raises(ConfigError, match=message) as raised:
            WxApp(APPIDS["alipay"], secret, "alipay", key)
        assert private[80:140] not in str(raised.value) and public[40:100] not in str(raised.value)
    single = WxConfig.from_env(
        {
            "WX_APPID": APPIDS["alipay"],
            "WX_SECRET": private,
            "WX_PLATFORM": "alipay",
            "WX_ALIPAY_PUBLIC_KEY": public,
        }
    )
    assert (
        single.platform == "alipay" and private not in repr(single) and public not in repr(single)
    )
