"""Several mini-programs on one backend: the apps of one configuration, the platforms they
belong to, and how they are written down (``WX_APPS``, an apps file).

An app is a platform (:data:`PLATFORMS`: ``wechat``, the default, ``qq``, ``douyin``,
``baidu``, ``kuaishou``, ``alipay``), an appid, and its credentials: the AppSecret (Baidu:
the App Secret that goes with the App Key, which is the appid), or for Alipay the app's
RSA2 private key plus Alipay's public key. A WeChat app without a secret logs in through a
WeChat third-party platform (``component_appid`` and ``component_token`` of
:class:`~wxmiddleware.WxConfig`).

The written form of one app, in ``WX_APPS`` (comma-separated) and in a text apps file (one
per line), is ``appid:secret``; ``appid`` alone is a WeChat app logged in through the
third-party platform; ``platform:appid:secret`` names the platform first
(``douyin:tt1234…:secret``); an Alipay app is ``alipay:appid:private_key:alipay_public_key``
(each key as the bare base64 text Alipay's key tool gives, or PEM in a JSON apps file).
Nothing here repeats a secret or a key in an error message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, NamedTuple, Tuple, Union

from .errors import ConfigError


class Platform(NamedTuple):
    """What the configuration and the messages need to know about one mini-program platform.

    ``name``: its word in ``WX_APPS`` and ``wxmiddleware.platform``; ``title``: its name
    in messages; ``login``: the mini-program call that gives a code (named in the
    ``invalid_code`` message); ``appid_shape``/``appid_hint``: what its appids look like
    (``WxConfig.from_env``'s check); ``api_base``: where its login API lives by default,
    overridable with ``api_base_variable`` (tests point it at the fake).
    """

    name: str
    title: str
    login: str
    appid_shape: re.Pattern[str]
    appid_hint: str
    api_base: str
    api_base_variable: str


DEFAULT_PLATFORM = "wechat"
#: Every platform, by name. Appid shapes as each platform's console shows them: WeChat
#: ``wx`` + 16 hex digits, QQ a number, Douyin ``tt`` + 16 letters/digits, Baidu the App
#: Key (32 letters/digits), Kuaishou ``ks`` + digits, Alipay a 16-digit number.
PLATFORM_INFO: Dict[str, Platform] = {
    info.name: info
    for info in (
        Platform(
            "wechat",
            "WeChat",
            "wx.login()",
            re.compile(r"wx[0-9a-fA-F]{16}"),
            "'wx' and 16 hex digits like wx0123456789abcdef",
            "https://api.weixin.qq.com",
            "WX_API_BASE",
        ),
        Platform(
            "qq",
            "QQ",
            "qq.login()",
            re.compile(r"[1-9][0-9]{5,15}"),
            "a number like 1110000000",
            "https://api.q.qq.com",
            "WX_API_BASE_QQ",
        ),
        Platform(
            "douyin",
            "Douyin",
            "tt.login()",
            re.compile(r"tt[0-9A-Za-z]{8,32}"),
            "'tt' and 16 letters or digits like tt0123456789abcdef",
            "https://developer.toutiao.com",
            "WX_API_BASE_DOUYIN",
        ),
        Platform(
            "baidu",
            "Baidu",
            "swan.login()",
            re.compile(r"[0-9A-Za-z]{16,64}"),
            "the App Key, 32 letters and digits",
            "https://spapi.baidu.com",
            "WX_API_BASE_BAIDU",
        ),
        Platform(
            "kuaishou",
            "Kuaishou",
            "ks.login()",
            re.compile(r"ks[0-9]{6,30}"),
            "'ks' and digits like ks671599294546520284",
            "https://open.kuaishou.com",
            "WX_API_BASE_KUAISHOU",
        ),
        Platform(
            "alipay",
            "Alipay",
            "my.getAuthCode()",
            re.compile(r"[0-9]{16}"),
            "16 digits like 2021000000000000",
            "https://openapi.alipay.com",
            "WX_API_BASE_ALIPAY",
        ),
    )
}
#: The platforms an app may belong to. ``wechat`` is the default and may be left out.
PLATFORMS = tuple(PLATFORM_INFO)
#: What an appid may hold: letters, digits and ``_``, at most 64 of them (WeChat's are
#: ``wx`` and 16 hex digits; other platforms' ids have other shapes).
APPID_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}")


def check_appid(appid: Any, what: str = "appid") -> str:
    """``appid`` unchanged, or :class:`ConfigError` unless it is a string of 1 to 64
    characters of ``[A-Za-z0-9_]``."""
    if not isinstance(appid, str) or not APPID_PATTERN.fullmatch(appid):
        raise ConfigError(f"{what} must be 1 to 64 characters of A-Z, a-z, 0-9 and _")
    return appid


@dataclass(frozen=True)
class WxApp:
    """One mini-program the middleware serves.

    ``appid``: its AppID (Baidu: the App Key); ``secret``: its AppSecret (never shown in a
    ``repr`` or an error), for Alipay the app's RSA2 private key, or ``""`` for a WeChat app
    that logs in through the third-party platform of the configuration
    (``/sns/component/jscode2session``); ``platform``: one of :data:`PLATFORMS`
    (``"wechat"`` by default); ``public_key``: Alipay's public key (Alipay apps only), which
    checks the signature of Alipay's answers. An Alipay app's keys are checked here (which
    needs ``cryptography``): a key that does not load is a :class:`ConfigError` at start-up.
    """

    appid: str
    secret: str = field(default="", repr=False)
    platform: str = DEFAULT_PLATFORM
    public_key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        check_appid(self.appid)
        if not isinstance(self.secret, str) or not isinstance(self.public_key, str):
            raise ConfigError(f"the secret and keys of app {self.appid} must be strings")
        object.__setattr__(self, "secret", self.secret.strip())
        object.__setattr__(self, "public_key", self.public_key.strip())
        check_credentials(self.appid, self.platform, self.secret, self.public_key)

    @property
    def via_component(self) -> bool:
        """Whether the app logs in through the third-party platform (a WeChat app without a
        secret)."""
        return not self.secret

    @classmethod
    def parse(cls, entry: str) -> WxApp:
        """One app from its written form: ``appid:secret``, ``appid`` (through the
        third-party platform), ``platform:appid:secret`` or
        ``alipay:appid:private_key:alipay_public_key``. Raises :class:`ConfigError` naming
        the entry's number of fields, never its secret."""
        parts = [part.strip() for part in entry.strip().split(":")]
        public_key = ""
        if len(parts) == 1:
            return cls(check_appid(parts[0], "an apps entry's appid"))
        if len(parts) == 2:
            appid, secret = parts
            platform = DEFAULT_PLATFORM
        elif len(parts) == 3:
            platform, appid, secret = parts
        elif len(parts) == 4 and parts[0] == "alipay":
            platform, appid, secret, public_key = parts
        else:
            raise ConfigError(
                "an apps entry is appid:secret, platform:appid:secret,"
                " alipay:appid:private_key:alipay_public_key or a bare appid"
                f" (one had {len(parts)} fields separated by ':')"
            )
        check_appid(appid, "an apps entry's appid")
        if not secret:
            raise ConfigError(f"the apps entry of {appid} has an empty secret")
        return cls(appid, secret, platform, public_key)


def check_credentials(appid: str, platform: str, secret: str, public_key: str) -> None:
    """Raise :class:`ConfigError` unless ``platform`` is known and the app ``appid`` has
    what its platform logs in with: a secret (only a WeChat app may go without, through
    the third-party platform), and for Alipay a private key and Alipay's public key that
    load. The message names the app, never a secret or key."""
    if platform not in PLATFORM_INFO:
        raise ConfigError(
            f"app {appid}: platform {platform!r} is not supported"
            f" (supported: {', '.join(PLATFORMS)})"
        )
    if platform != DEFAULT_PLATFORM and not secret:
        key = "private key" if platform == "alipay" else "secret"
        raise ConfigError(f"the {platform} app {appid} needs its {key}")
    if platform == "alipay":
        from ._alipay_keys import check_keys

        check_keys(appid, secret, public_key)
    elif public_key:
        raise ConfigError(f"app {appid}: only an Alipay app takes a public key")


#: What :func:`app_tuple` accepts: the written form, ``{appid: secret}``, or a sequence of
#: :class:`WxApp`, written entries and mappings with ``appid``, ``secret``, ``platform``.
AppsSpec = Union[str, Mapping[str, str], Iterable[Union[WxApp, str, Mapping[str, Any]]]]


def _one(item: Any) -> WxApp:
    if isinstance(item, WxApp):
        return item
    if isinstance(item, str):
        return WxApp.parse(item)
    if isinstance(item, Mapping):
        unknown = set(item) - {"appid", "secret", "platform", "private_key", "public_key"}
        if unknown:
            raise ConfigError(f"an app has unknown fields: {', '.join(sorted(unknown))}")
        return WxApp(
            item.get("appid", ""),
            item.get("secret") or item.get("private_key") or "",
            item.get("platform") or DEFAULT_PLATFORM,
            item.get("public_key") or "",
        )
    raise ConfigError(f"an app must be a WxApp, a mapping or 'appid:secret', got {type(item)}")


def app_tuple(spec: AppsSpec) -> Tuple[WxApp, ...]:
    """The apps ``spec`` describes, in order; :class:`ConfigError` for a malformed one or an
    appid given twice."""
    if isinstance(spec, str):
        items: Iterable[Any] = [part for part in re.split(r"[,\n]", spec) if part.strip()]
    elif isinstance(spec, Mapping):
        items = [WxApp(appid, secret) for appid, secret in spec.items()]
    else:
        try:
            items = list(spec)
        except TypeError:
            raise ConfigError("apps must be a sequence of apps or 'appid:secret,...'") from None
    apps = tuple(_one(item) for item in items)
    seen = set()
    for app in apps:
        if app.appid in seen:
            raise ConfigError(f"app {app.appid} is given twice")
        seen.add(app.appid)
    return apps


def load_apps_file(path: Union[str, Path]) -> Tuple[WxApp, ...]:
    """The apps in the file at ``path`` (``WX_APPS_FILE``).

    JSON (a list of ``{"appid", "secret", "platform"}`` objects, Alipay's with
    ``"private_key"`` (or ``"secret"``) and ``"public_key"``, or an object whose
    ``"apps"`` is one), or text: one ``appid:secret`` entry per line, blank lines and lines
    starting with ``#`` ignored. Raises :class:`ConfigError` naming the file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the apps file {path}: {type(exc).__name__}") from None
    if text.lstrip()[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigError(f"the apps file {path} is not valid JSON") from None
        if isinstance(data, dict):
            data = data.get("apps")
        if not isinstance(data, list):
            raise ConfigError(f'the apps file {path} must hold a list of apps or {{"apps": [...]}}')
        return app_tuple(data)
    lines = [line.strip() for line in text.splitlines()]
    return app_tuple([line for line in lines if line and not line.startswith("#")])
