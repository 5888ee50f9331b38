"""Configuration: one frozen, validated dataclass shared by the WSGI and ASGI middleware.

The checks of its fields are :mod:`wxmiddleware._config_checks`'s; the ``WX_*`` environment
variables :meth:`WxConfig.from_env` reads, :mod:`wxmiddleware._config_env`'s.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple

from ._apps import DEFAULT_PLATFORM, PLATFORM_INFO, WxApp, app_tuple, check_appid, check_credentials
from ._config_checks import (
    API_BASE_FIELDS,
    api_base,
    as_tuple,
    canonical,
    check_numbers,
    check_paths,
    check_store_url,
    origins,
    store_keys,
)
from ._config_env import env_values
from .errors import ConfigError

if TYPE_CHECKING:
    from .wechat._security import ApiSecurity

DEFAULT_API_BASE = "https://api.weixin.qq.com"
#: The header Tencent's Wafer client SDK sends its session token (its "skey") in.
WAFER_SKEY_HEADER = "X-WX-Skey"

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def header_key(name: str) -> str:
    """The form in which header names compare: case-insensitive, with "_" and "-" equal."""
    return name.lower().replace("_", "-")


@dataclass(frozen=True)
class WxConfig:
    """Everything the middleware needs to know, validated once at start-up.

    ``appid`` and ``secret`` are required, or ``apps`` (several mini-programs, see
    :class:`~wxmiddleware.WxApp`; ``appid`` and ``secret`` are then the first app's, or
    those of the one ``appid`` names). ``store`` is a store URL (``sqlite:///path``,
    ``memory://``, ``redis://host:port/db``); ``None`` selects the embedded SQLite default.
    Paths in ``public_paths`` and ``optional_paths`` match exactly, segment by segment; an
    entry ending in ``/*`` matches that prefix and every path below it.

    ``wafer_compat`` (on by default) also serves clients of Tencent's Wafer SDK
    (``wafer2-client-sdk``): a login that sends its code in the ``X-WX-Code`` header (``GET``
    or ``POST``) gets Wafer's answer shape, and the token comes back in ``X-WX-Skey``, which
    must then stay in ``token_headers``.
    """

    #: The mini-program's AppID (``wx…``), from its admin console.
    appid: str = ""
    #: The AppSecret; never logged, never in a ``repr`` or an error message. Empty for an
    #: app logged in through a third-party platform (``component_appid``).
    secret: str = field(default="", repr=False)
    #: Where WeChat's API lives (scheme and host, no trailing slash); tests point it at the
    #: fake WeChat.
    api_base: str = DEFAULT_API_BASE
    #: A store URL (``sqlite:///path``, ``memory://``, ``redis://host:port/db``), or ``None``
    #: for the embedded SQLite default.
    store: Optional[str] = None
    #: The path the middleware answers logins on (``POST``, or ``GET`` with ``allow_get_login``).
    login_path: str = "/wx/login"
    #: The path the middleware answers logouts on (``POST``).
    logout_path: str = "/wx/logout"
    #: Idle timeout in seconds: a session unused this long ends; every use slides it. Also
    #: accepted as ``idle_ttl`` (an alias, in ``with_options``, ``from_options``, ``from_env``
    #: overrides and the middleware's keyword options; the constructor and the environment
    #: use this one name, ``WX_SESSION_TTL``).
    session_ttl: int = 7200
    #: Absolute cap in seconds: a session ends this long after its login, used or not.
    session_max_age: int = 30 * 24 * 3600
    #: Paths that need no session (``/*`` suffix: the prefix and everything below it).
    public_paths: Tuple[str, ...] = ()
    #: Paths where a valid session is attached when present and not required.
    optional_paths: Tuple[str, ...] = ()
    #: Header names that carry the token, compared case-insensitively with ``_`` = ``-``.
    token_headers: Tuple[str, ...] = ("3rd-session", WAFER_SKEY_HEADER)
    #: Also accept ``GET /wx/login?code=…``. The code then lands in access logs, a live
    #: credential for its five minutes, so such a code is never replayed: a second use is
    #: ``invalid_code`` (a code in a body or in Wafer's ``X-WX-Code`` keeps idempotent retries).
    allow_get_login: bool = False
    #: Put ``openid`` (and ``unionid``) in the login answer.
    expose_openid: bool = False
    #: The largest login body accepted, in bytes (64 to 1048576).
    max_body_bytes: int = 4096
    #: Seconds to wait for a connection to WeChat.
    connect_timeout: float = 2.0
    #: Seconds to wait for WeChat's answer once connected; a whole exchange ends after
    #: ``connect_timeout + read_timeout`` seconds.
    read_timeout: float = 5.0
    #: Seconds a login code is remembered, so that a client's retry gets the same session
    #: (WeChat's codes live five minutes).
    code_ttl: int = 300
    #: Serve clients of Tencent's Wafer SDK too (see the class docstring).
    wafer_compat: bool = True
    #: How many live sessions one user (openid) may have; a login beyond it ends the
    #: oldest. Every login writes WeChat's new session_key into all of them.
    max_sessions_per_user: int = 5
    #: Keys that seal session_keys at rest in SQLite and Redis (AES-GCM under a key HKDF
    #: derives from each), newest first: the first seals, all of them open, so a key is
    #: rotated by putting the new one first. Empty: one key derived from ``secret``. Each
    #: at least 16 characters; ``WX_STORE_KEY`` takes them comma-separated. Never logged.
    store_key: Tuple[str, ...] = field(default=(), repr=False)
    #: Logins allowed per client address, in the ``limits`` library's notation
    #: (``"10/minute"``, ``"5/minute;50/day"``); ``None``: no limit. A login over it is
    #: answered ``429`` with ``Retry-After`` before WeChat is called. Needs
    #: ``wxmiddleware[ratelimit]``. From ``WX_LOGIN_RATE_LIMIT``.
    login_rate_limit: Optional[str] = None
    #: Logins allowed for the whole app (every client together), same notation; ``None``:
    #: no budget. From ``WX_APP_LOGIN_RATE_LIMIT``.
    app_login_rate_limit: Optional[str] = None
    #: How many proxies in front of the app append to ``X-Forwarded-For``: the client address
    #: of a rate limit is then that header's value this many places from the right
    #: (werkzeug ``ProxyFix``'s rule). ``0`` (the default): the server's peer address, and
    #: the header, which any client can write, is ignored. From ``WX_TRUSTED_PROXIES``.
    trusted_proxies: int = 0
    #: Where the rate-limit counters live, as a ``limits`` storage URL (``memory://``,
    #: ``redis://host:6379/1``); ``None``: the Redis of a ``redis://``/``rediss://`` ``store``,
    #: else this process's memory. From ``WX_RATE_LIMIT_STORAGE``.
    rate_limit_storage: Optional[str] = None
    #: The browser origins (``scheme://host[:port]``, compared exactly) allowed to call the
    #: login and logout paths cross-origin, or ``("*",)`` for any; empty (the default): no
    #: CORS policy. With a policy, the middleware answers CORS preflights to those two paths
    #: itself and puts CORS headers on every answer it gives (``401``s included); without
    #: one, those preflights go to the app. Preflights to the app's own paths always go to
    #: the app (its CORS layer answers them). From ``WX_CORS_ORIGINS``, comma-separated.
    cors_origins: Tuple[str, ...] = ()
    #: Several mini-programs served by one middleware (:class:`~wxmiddleware.WxApp`s,
    #: ``{appid: secret}`` or ``"appid1:secret1,appid2:secret2"``); empty: the one app of
    #: ``appid`` and ``secret``. Which app a request is for comes from its ``Referer``
    #: (``https://servicewechat.com/{appid}/{version}/page-frame.html``), else its
    #: ``X-WX-Appid`` header. From ``WX_APPS`` or the file ``WX_APPS_FILE`` names.
    apps: Tuple[WxApp, ...] = ()
    #: The appid of the WeChat third-party platform (``component_appid``) through which
    #: apps without a secret log in (``/sns/component/jscode2session``). From
    #: ``WX_COMPONENT_APPID``.
    component_appid: str = ""
    #: ``component_token(component_appid) -> str``: the platform's current
    #: ``component_access_token`` (its ticket and token flow stay the caller's); under the
    #: ASGI middleware it may be a coroutine function. Needed with ``component_appid``.
    component_token: Optional[Callable[[str], Any]] = field(default=None, repr=False)
    #: The platform of the app of ``appid`` (``wechat``, ``qq``, ``douyin``, ``baidu``,
    #: ``kuaishou``, ``alipay``; see docs/platforms.md); with ``apps``, each app's own.
    #: From ``WX_PLATFORM``.
    platform: str = DEFAULT_PLATFORM
    #: Alipay's public key (base64 or PEM) for an Alipay app of ``appid``, whose ``secret``
    #: is then the app's RSA2 private key; never logged. From ``WX_ALIPAY_PUBLIC_KEY``.
    public_key: str = field(default="", repr=False)
    #: Where QQ's login API lives (``WX_API_BASE_QQ``).
    api_base_qq: str = PLATFORM_INFO["qq"].api_base
    #: Where Douyin's login API lives (``WX_API_BASE_DOUYIN``).
    api_base_douyin: str = PLATFORM_INFO["douyin"].api_base
    #: Where Baidu's login API lives (``WX_API_BASE_BAIDU``).
    api_base_baidu: str = PLATFORM_INFO["baidu"].api_base
    #: Where Kuaishou's login API lives (``WX_API_BASE_KUAISHOU``).
    api_base_kuaishou: str = PLATFORM_INFO["kuaishou"].api_base
    #: Where Alipay's gateway lives (``WX_API_BASE_ALIPAY``; ``/gateway.do`` is appended).
    api_base_alipay: str = PLATFORM_INFO["alipay"].api_base
    #: WeChat's server-API security (API安全; docs/api-security.md), off while these are
    #: empty: the symmetric key (API对称密钥, base64 of 32 bytes; ``WX_API_SYM_KEY``). Never
    #: logged. Set all six ``api_*`` fields or none; a malformed one is a ConfigError.
    api_sym_key: str = field(default="", repr=False)
    #: The symmetric key's number (``WX_API_SYM_SN``).
    api_sym_sn: str = ""
    #: The app's RSA private key (API非对称密钥): the path of its PEM file, PKCS#1 or PKCS#8,
    #: or the PEM text (``WX_API_APP_KEY``, a path). Never logged.
    api_app_key: str = field(default="", repr=False)
    #: The app key's number (``WX_API_APP_SN``).
    api_app_sn: str = ""
    #: WeChat's platform certificates (开放平台证书): paths of PEM files or PEM texts, two while
    #: WeChat rotates them (``WX_API_PLATFORM_CERT``, comma-separated paths).
    api_platform_cert: Tuple[str, ...] = ()
    #: The numbers of those certificates (平台证书编号, not their serials), in the same order
    #: (``WX_API_PLATFORM_SN``, comma-separated).
    api_platform_sn: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._check_apps()
        if not isinstance(self.appid, str) or not self.appid.strip():
            raise ConfigError("appid is required: pass appid=... or set WX_APPID (or WX_APPS)")
        if not isinstance(self.secret, str):
            raise ConfigError("secret must be a string")
        if not self.secret.strip() and not self.apps and not self.component_appid:
            raise ConfigError("secret is required: pass secret=... or set WX_SECRET")
        for name in API_BASE_FIELDS.values():
            object.__setattr__(self, name, api_base(getattr(self, name), name))
        for name in ("public_paths", "optional_paths", "token_headers"):
            object.__setattr__(self, name, as_tuple(getattr(self, name), name))
        object.__setattr__(self, "cors_origins", origins(self.cors_origins))
        check_paths(self)
        if not self.token_headers:
            raise ConfigError("token_headers must name at least one header")
        for header in self.token_headers:
            if not _HEADER_NAME.match(header):
                raise ConfigError(f"token_headers: {header!r} is not a valid header name")
        if self.wafer_compat and header_key(WAFER_SKEY_HEADER) not in {
            header_key(header) for header in self.token_headers
        }:
            # A Wafer client sends its token nowhere else: without it every request would 401.
            raise ConfigError(
                f"wafer_compat needs {WAFER_SKEY_HEADER!r} in token_headers"
                " (or set wafer_compat=False)"
            )
        object.__setattr__(self, "store_key", store_keys(self.store_key))
        check_numbers(self)
        check_store_url(self.store)
        self._check_api_security()

    def _check_api_security(self) -> None:
        """Load the ``api_*`` keys once (a ConfigError names a malformed one); refuse them
        with several apps, whose keys are each app's own."""
        for name in ("api_sym_key", "api_sym_sn", "api_app_key", "api_app_sn"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string")
        for name in ("api_platform_cert", "api_platform_sn"):
            object.__setattr__(self, name, as_tuple(getattr(self, name), name))
        if self.api_security is not None and self.multi_app:
            raise ConfigError(
                "API security keys (WX_API_*) belong to one mini-program: they cannot be"
                " combined with several apps (WX_APPS)"
            )

    @property
    def api_security(self) -> Optional[ApiSecurity]:
        """The loaded API security keys of the ``api_*`` fields (an ``ApiSecurity`` of
        :mod:`wxmiddleware.wechat._security`, loaded once), or ``None`` when it is off."""
        from .wechat._security_keys import load_api_security

        return load_api_security(
            self.api_sym_key,
            self.api_sym_sn,
            self.api_app_key,
            self.api_app_sn,
            self.api_platform_cert,
            self.api_platform_sn,
        )

    def _check_apps(self) -> None:
        """Normalise ``apps``; make ``appid``/``secret`` the default app's; check that an
        app without a secret has a third-party platform to log in through."""
        apps = app_tuple(self.apps) if self.apps else ()
        object.__setattr__(self, "apps", apps)
        if apps:
            chosen = [app for app in apps if app.appid == self.appid] if self.appid else apps
            if not chosen:
                raise ConfigError(f"appid {self.appid} is not one of apps")
            object.__setattr__(self, "appid", chosen[0].appid)
            object.__setattr__(self, "secret", chosen[0].secret)
            object.__setattr__(self, "platform", chosen[0].platform)
            object.__setattr__(self, "public_key", chosen[0].public_key)
        elif isinstance(self.appid, str) and self.appid.strip():
            if not isinstance(self.secret, str) or not isinstance(self.public_key, str):
                raise ConfigError("secret and public_key must be strings")
            check_credentials(self.appid, self.platform, self.secret.strip(), self.public_key)
        via_component = any(app.via_component for app in apps) or (
            not apps and self.component_appid and not self.secret
        )
        if self.component_appid:
            check_appid(self.component_appid, "component_appid")
        if not via_component:
            return
        if not self.component_appid or not callable(self.component_token):
            raise ConfigError(
                "an app without a secret logs in through a third-party platform: set"
                " component_appid (WX_COMPONENT_APPID) and component_token, or give its secret"
            )
        if not self.store_key:
            raise ConfigError(
                "an app without a secret has no secret to seal session_keys with: set"
                " store_key (WX_STORE_KEY)"
            )

    @property
    def multi_app(self) -> bool:
        """Whether several apps are configured (each request then names its app)."""
        return len(self.apps) > 1

    @property
    def app_ids(self) -> Tuple[str, ...]:
        """The appids served, the default app's first when there is only one."""
        return tuple(app.appid for app in self.apps) or (self.appid,)

    def api_base_of(self, platform: str) -> str:
        """Where ``platform``'s login API lives (scheme, host, optional path; no trailing
        slash): ``api_base`` for WeChat, ``api_base_<platform>`` for the others."""
        return str(getattr(self, API_BASE_FIELDS[platform]))

    def for_app(self, appid: str) -> WxConfig:
        """The configuration of the app ``appid`` alone: this one with that app's appid,
        secret, platform and public key and no ``apps``, made once. Raises
        :class:`KeyError` for an appid that is not configured."""
        if not self.apps and appid == self.appid:
            return self
        return _app_config(self, appid)

    @property
    def idle_ttl(self) -> int:
        """The idle timeout in seconds: :attr:`session_ttl` under its alias."""
        return self.session_ttl

    @classmethod
    def from_options(cls, **options: Any) -> WxConfig:
        """Build the configuration from keyword options, accepting ``idle_ttl`` for
        ``session_ttl``; raises :class:`ConfigError` for an invalid value."""
        return cls(**canonical(options))

    def with_options(self, **changes: Any) -> WxConfig:
        """Return a copy with some fields changed (validated again; ``idle_ttl`` accepted)."""
        return replace(self, **canonical(changes))

    @classmethod
    def from_env(
        cls,
        environ: Optional[Mapping[str, str]] = None,
        *,
        appid_check: Optional[bool] = None,
        **overrides: Any,
    ) -> WxConfig:
        """Build the configuration from ``WX_*`` environment variables.

        Keyword arguments override what the environment says. A missing ``WX_APPID`` or
        ``WX_SECRET`` raises :class:`ConfigError` naming the variable. The appid must have
        the shape of its platform's (a WeChat mini-program's is ``wx`` and 16 hex digits; a
        Douyin app's ``tt`` and 16 characters, and so on: docs/platforms.md), or
        :class:`ConfigError` names that shape: a placeholder or a pasted secret fails here,
        not as a ``502`` at the first login. ``appid_check=False`` (or ``WX_APPID_CHECK=0``;
        the argument wins) accepts any appid, for ids of a shape not foreseen.
        """
        env = os.environ if environ is None else environ
        names = [spec.name for spec in fields(cls)]
        return cls(**env_values(env, names, appid_check, overrides))


@functools.lru_cache(maxsize=256)
def _app_config(config: WxConfig, appid: str) -> WxConfig:
    for app in config.apps:
        if app.appid == appid:
            return replace(
                config,
                appid=app.appid,
                secret=app.secret,
                platform=app.platform,
                public_key=app.public_key,
                apps=(),
            )
    raise KeyError(appid)
