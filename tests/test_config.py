"""WxConfig: validation at construction and the WX_* environment variables."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from wxmiddleware import ConfigError, WxConfig

BASE: Dict[str, Any] = {"appid": "wxappid", "secret": "s3cret-value"}


def test_defaults() -> None:
    config = WxConfig(**BASE)
    assert config.api_base == "https://api.weixin.qq.com"
    assert config.login_path == "/wx/login" and config.logout_path == "/wx/logout"
    assert config.session_ttl == 7200
    assert config.store is None
    assert config.connect_timeout <= 2 and config.read_timeout <= 5


def test_secret_is_not_in_repr() -> None:
    assert "s3cret-value" not in repr(WxConfig(**BASE))


def test_frozen() -> None:
    config = WxConfig(**BASE)
    with pytest.raises(AttributeError):
        config.appid = "other"  # type: ignore[misc]


@pytest.mark.parametrize("missing", ["appid", "secret"])
def test_missing_credentials_name_the_variable(missing: str) -> None:
    values = dict(BASE, **{missing: ""})
    with pytest.raises(ConfigError, match=f"WX_{missing.upper()}"):
        WxConfig(**values)


@pytest.mark.parametrize(
    "changes",
    [
        {"api_base": "ftp://x"},
        {"api_base": "api.weixin.qq.com"},
        {"login_path": "wx/login"},
        {"login_path": "/wx/login?x=1"},
        {"logout_path": "/wx/login"},
        {"public_paths": ("health",)},
        {"public_paths": [1]},
        {"public_paths": 5},
        {"token_headers": ()},
        {"token_headers": ("bad header",)},
        {"session_ttl": 0},
        {"session_ttl": True},
        {"session_ttl": 1.5},
        {"session_max_age": 10, "session_ttl": 20},
        {"max_body_bytes": 10},
        {"connect_timeout": 0},
        {"read_timeout": "5"},
        {"store": "not-a-url"},
    ],
)
def test_invalid_values_raise(changes: Dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        WxConfig(**BASE, **changes)


def test_paths_from_comma_string_and_api_base_trailing_slash() -> None:
    config = WxConfig(**BASE, public_paths="/health, /static/*", api_base="http://127.0.0.1:1/")
    assert config.public_paths == ("/health", "/static/*")
    assert config.api_base == "http://127.0.0.1:1"


ENV_APPID = "wx00112233aabbccdd"


def test_from_env() -> None:
    config = WxConfig.from_env(
        {
            "WX_APPID": ENV_APPID,
            "WX_SECRET": "envsecret",
            "WX_API_BASE": "http://127.0.0.1:9",
            "WX_SESSION_STORE": "memory://",
            "WX_LOGIN_PATH": "/login",
            "WX_SESSION_TTL": "600",
            "WX_PUBLIC_PATHS": "/health,/docs/*",
            "WX_EXPOSE_OPENID": "true",
            "WX_READ_TIMEOUT": "1.5",
        }
    )
    assert config.appid == ENV_APPID and config.secret == "envsecret"
    assert config.api_base == "http://127.0.0.1:9"
    assert config.store == "memory://"
    assert config.login_path == "/login"
    assert config.session_ttl == 600
    assert config.public_paths == ("/health", "/docs/*")
    assert config.expose_openid is True
    assert config.read_timeout == 1.5


def test_from_env_overrides_and_empty_values() -> None:
    config = WxConfig.from_env(
        {"WX_APPID": ENV_APPID, "WX_SECRET": "envsecret", "WX_SESSION_STORE": ""},
        public_paths=("/health",),
    )
    assert config.store is None and config.public_paths == ("/health",)


@pytest.mark.parametrize("variable", ["WX_APPID", "WX_SECRET"])
def test_from_env_missing_names_the_variable(variable: str) -> None:
    env = {"WX_APPID": ENV_APPID, "WX_SECRET": "envsecret"}
    del env[variable]
    with pytest.raises(ConfigError, match=variable):
        WxConfig.from_env(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("WX_SESSION_TTL", "soon"), ("WX_EXPOSE_OPENID", "maybe"), ("WX_READ_TIMEOUT", "x")],
)
def test_from_env_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        WxConfig.from_env({"WX_APPID": ENV_APPID, "WX_SECRET": "b", variable: value})


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WX_APPID", ENV_APPID)
    monkeypatch.setenv("WX_SECRET", "ossecret")
    assert WxConfig.from_env().appid == ENV_APPID


@pytest.mark.parametrize(
    "appid",
    ["wxenv", "your-appid", "wxfedcba987654321", "wxfedcba98765432100", "fedcba9876543210"],
)
def test_from_env_checks_the_appid_shape(appid: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WxConfig.from_env({"WX_APPID": appid, "WX_SECRET": "envsecret"})
    message = str(caught.value)
    assert "WX_APPID" in message and "'wx' and 16 hex digits" in message
    assert "WX_APPID_CHECK=0" in message and appid not in message


def test_an_appid_that_looks_like_a_secret_is_named_so_never_echoed() -> None:
    pasted = "0123456789abcdef0123456789abcdef"
    with pytest.raises(ConfigError, match="AppSecret") as caught:
        WxConfig.from_env({"WX_APPID": pasted, "WX_SECRET": "envsecret"})
    assert pasted not in str(caught.value)


def test_the_appid_check_can_be_turned_off_for_other_platforms() -> None:
    env = {"WX_APPID": "tt0123456789abcdef", "WX_SECRET": "envsecret"}
    assert WxConfig.from_env({**env, "WX_APPID_CHECK": "0"}).appid == env["WX_APPID"]
    assert WxConfig.from_env(env, appid_check=False).appid == env["WX_APPID"]
    # The argument wins over the variable, both ways.
    with pytest.raises(ConfigError, match="16 hex digits"):
        WxConfig.from_env({**env, "WX_APPID_CHECK": "0"}, appid_check=True)
    with pytest.raises(ConfigError, match="WX_APPID_CHECK"):
        WxConfig.from_env({**env, "WX_APPID_CHECK": "maybe"})
    # Built in code, the appid is taken as given (tests and other platforms).
    assert WxConfig(appid="tt-app", secret="s").appid == "tt-app"


def test_wafer_compat_is_on_by_default_and_read_from_env() -> None:
    assert WxConfig(**BASE).wafer_compat is True
    env = {"WX_APPID": ENV_APPID, "WX_SECRET": "b"}
    assert WxConfig.from_env({**env, "WX_WAFER_COMPAT": "0"}).wafer_compat is False
    assert WxConfig.from_env({**env, "WX_WAFER_COMPAT": "on"}).wafer_compat is True
    with pytest.raises(ConfigError, match="WX_WAFER_COMPAT"):
        WxConfig.from_env({**env, "WX_WAFER_COMPAT": "maybe"})


def test_wafer_compat_needs_the_skey_header() -> None:
    with pytest.raises(ConfigError, match="X-WX-Skey"):
        WxConfig(**BASE, token_headers=("3rd-session",))
    # Header names compare case-insensitively with "_" and "-" equal.
    assert WxConfig(**BASE, token_headers=("Authorization", "x_wx_skey")).wafer_compat
    config = WxConfig(**BASE, token_headers=("Authorization",), wafer_compat=False)
    assert config.token_headers == ("Authorization",)


# -- several apps (issue 22) -------------------------------------------------------------------

APP_A, SECRET_A = "wx00000000000000a1", "secret-a-0123456789abcdef0123"
APP_B, SECRET_B = "wx00000000000000b2", "secret-b-0123456789abcdef0123"


def test_apps_beside_the_single_app_form() -> None:
    from wxmiddleware._apps import WxApp

    single = WxConfig(APP_A, SECRET_A)
    assert not single.multi_app and single.app_ids == (APP_A,) and single.for_app(APP_A) is single
    several = WxConfig(apps=f"{APP_A}:{SECRET_A},{APP_B}:{SECRET_B}")
    assert several.multi_app and several.app_ids == (APP_A, APP_B)
    assert (several.appid, several.secret) == (APP_A, SECRET_A)
    one = several.for_app(APP_B)
    assert (one.appid, one.secret, one.apps) == (APP_B, SECRET_B, ())
    assert several.for_app(APP_B) is one  # made once
    assert WxConfig(apps={APP_A: SECRET_A, APP_B: SECRET_B}).apps == several.apps
    assert WxConfig(apps=[WxApp(APP_A, SECRET_A), {"appid": APP_B, "secret": SECRET_B}]).apps == (
        several.apps
    )
    assert SECRET_A not in repr(several) and SECRET_B not in repr(several)


def test_apps_from_the_environment_and_a_file(tmp_path: Any) -> None:
    env = {"WX_APPS": f"{APP_A}:{SECRET_A}, wechat:{APP_B}:{SECRET_B}"}
    config = WxConfig.from_env(env)
    assert config.app_ids == (APP_A, APP_B) and config.for_app(APP_B).secret == SECRET_B
    text = tmp_path / "apps.txt"
    text.write_text(f"# our apps\n{APP_A}:{SECRET_A}\n\n{APP_B}:{SECRET_B}\n")
    assert WxConfig.from_env({"WX_APPS_FILE": str(text)}).apps == config.apps
    as_json = tmp_path / "apps.json"
    as_json.write_text(
        f'{{"apps": [{{"appid": "{APP_A}", "secret": "{SECRET_A}"}},'
        f' {{"appid": "{APP_B}", "secret": "{SECRET_B}", "platform": "wechat"}}]}}'
    )
    assert WxConfig.from_env({"WX_APPS_FILE": str(as_json)}).apps == config.apps


@pytest.mark.parametrize(
    ("apps", "message"),
    [
        (f"tiktok:tt0123:{SECRET_A}", "platform 'tiktok' is not supported"),
        ("douyin:tt0123:", "empty secret"),
        (f"alipay:2021000000000001:{SECRET_A}", "needs Alipay's public key"),
        (f"alipay:2021000000000001:{SECRET_A}:{SECRET_B}", "not an RSA key"),
        (f"{APP_A}:{SECRET_A},{APP_A}:{SECRET_B}", "given twice"),
        (f"wx-bad!:{SECRET_A}", "A-Z, a-z, 0-9 and _"),
        (f"{APP_A}:", "empty secret"),
        (f"a:b:c:{SECRET_A}", "4 fields"),
        (APP_A, "component_appid"),
    ],
)
def test_malformed_apps_never_echo_a_secret(apps: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        WxConfig(apps=apps)
    assert SECRET_A not in str(raised.value) and SECRET_B not in str(raised.value)


def test_from_env_checks_each_apps_shape() -> None:
    with pytest.raises(ConfigError, match="an appid of WX_APPS"):
        WxConfig.from_env({"WX_APPS": f"{APP_A}:{SECRET_A},notanappid:{SECRET_B}"})
    with pytest.raises(ConfigError, match="not both"):
        WxConfig.from_env({"WX_APPS": f"{APP_A}:{SECRET_A}", "WX_APPS_FILE": "/nowhere"})


def test_a_platform_app_needs_the_platform_and_a_store_key() -> None:
    def token(component_appid: str) -> str:
        return "t"

    with pytest.raises(ConfigError, match="store_key"):
        WxConfig(
            apps=f"{APP_A}:{SECRET_A},{APP_B}", component_appid="wxcomp", component_token=token
        )
    config = WxConfig.from_env(
        {"WX_APPS": f"{APP_A}:{SECRET_A},{APP_B}", "WX_COMPONENT_APPID": "wxcomp"},
        component_token=token,
        store_key="store-key-0123456789abcdef",
    )
    assert config.for_app(APP_B).secret == "" and config.component_appid == "wxcomp"


def test_store_keys_from_wx_store_key_seal_and_open_the_apps_session_keys() -> None:
    from wxmiddleware.session import SessionScope

    old, new = "old-store-key-0123456789", "new-store-key-9876543210"
    env = {"WX_APPS": f"{APP_A}:{SECRET_A},{APP_B}:{SECRET_B}", "WX_STORE_KEY": f" {new} , {old} "}
    config = WxConfig.from_env(env)
    assert config.store_key == (new, old)
    assert new not in repr(config) and old not in repr(config)
    rotated = SessionScope.for_config(config.for_app(APP_B))
    before = SessionScope.for_config(WxConfig.from_env({**env, "WX_STORE_KEY": old}).for_app(APP_B))
    from_secret = SessionScope.for_config(
        WxConfig.from_env({"WX_APPS": env["WX_APPS"]}).for_app(APP_B)
    )
    # The new key seals, the old one (listed second) still opens what it sealed.
    assert rotated.open_key("o-alice", before.seal_key("o-alice", "sk-old")) == "sk-old"
    assert before.open_key("o-alice", rotated.seal_key("o-alice", "sk-new")) is None
    # Each app of the configuration seals under the store keys, bound to its own appid.
    other_app = SessionScope.for_config(config.for_app(APP_A))
    assert other_app.open_key("o-alice", rotated.seal_key("o-alice", "sk-b")) is None
    # Without WX_STORE_KEY the key is derived from the app's secret: neither opens the other.
    assert from_secret.open_key("o-alice", rotated.seal_key("o-alice", "sk-new")) is None
    assert rotated.open_key("o-alice", from_secret.seal_key("o-alice", "sk-1")) is None
    with pytest.raises(ConfigError, match="at least 16 characters"):
        WxConfig.from_env({**env, "WX_STORE_KEY": f"{new},short"})
