"""The ``WX_*`` environment variables of :meth:`WxConfig.from_env
<wxmiddleware.config.WxConfig.from_env>`: which variable sets which field, how its text
reads (booleans, numbers, comma-separated lists, ``WX_APPS``/``WX_APPS_FILE``), and the
start-up check that an appid has its platform's shape.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, Mapping, Optional

from ._apps import DEFAULT_PLATFORM, PLATFORM_INFO, app_tuple, load_apps_file
from ._config_checks import canonical
from .errors import ConfigError

#: The environment variable of each field ``from_env`` reads.
ENV_VARIABLES = {
    "appid": "WX_APPID",
    "secret": "WX_SECRET",
    "api_base": "WX_API_BASE",
    "store": "WX_SESSION_STORE",
    "login_path": "WX_LOGIN_PATH",
    "logout_path": "WX_LOGOUT_PATH",
    "session_ttl": "WX_SESSION_TTL",
    "session_max_age": "WX_SESSION_MAX_AGE",
    "public_paths": "WX_PUBLIC_PATHS",
    "optional_paths": "WX_OPTIONAL_PATHS",
    "allow_get_login": "WX_ALLOW_GET_LOGIN",
    "expose_openid": "WX_EXPOSE_OPENID",
    "connect_timeout": "WX_CONNECT_TIMEOUT",
    "read_timeout": "WX_READ_TIMEOUT",
    "wafer_compat": "WX_WAFER_COMPAT",
    "max_sessions_per_user": "WX_MAX_SESSIONS_PER_USER",
    "store_key": "WX_STORE_KEY",
    "login_rate_limit": "WX_LOGIN_RATE_LIMIT",
    "app_login_rate_limit": "WX_APP_LOGIN_RATE_LIMIT",
    "trusted_proxies": "WX_TRUSTED_PROXIES",
    "rate_limit_storage": "WX_RATE_LIMIT_STORAGE",
    "component_appid": "WX_COMPONENT_APPID",
    "cors_origins": "WX_CORS_ORIGINS",
    "api_sym_key": "WX_API_SYM_KEY",
    "api_sym_sn": "WX_API_SYM_SN",
    "api_app_key": "WX_API_APP_KEY",
    "api_app_sn": "WX_API_APP_SN",
    "api_platform_cert": "WX_API_PLATFORM_CERT",
    "api_platform_sn": "WX_API_PLATFORM_SN",
    "platform": "WX_PLATFORM",
    "public_key": "WX_ALIPAY_PUBLIC_KEY",
    **{
        f"api_base_{name}": info.api_base_variable
        for name, info in PLATFORM_INFO.items()
        if name != DEFAULT_PLATFORM
    },
}

#: How the text of a field's variable reads, when not as a string.
_FIELD_KINDS = {
    "session_ttl": "int",
    "session_max_age": "int",
    "allow_get_login": "bool",
    "expose_openid": "bool",
    "wafer_compat": "bool",
    "max_sessions_per_user": "int",
    "trusted_proxies": "int",
    "connect_timeout": "float",
    "read_timeout": "float",
}


def parse_bool(text: str, name: str) -> bool:
    """The boolean the variable ``name`` says (``1``/``0``, ``true``/``false``,
    ``yes``/``no``, ``on``/``off``; empty is false)."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {text!r}")


def _parse_number(text: str, name: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(text.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {text!r}") from None


_CONVERTERS: Dict[str, Callable[[str, str], Any]] = {
    "bool": parse_bool,
    "int": lambda text, name: _parse_number(text, name, int),
    "float": lambda text, name: _parse_number(text, name, float),
    "str": lambda text, name: text,
}


def env_values(
    env: Mapping[str, str],
    field_names: Iterable[str],
    appid_check: Optional[bool],
    overrides: Mapping[str, Any],
) -> Dict[str, Any]:
    """The keyword arguments :meth:`WxConfig.from_env
    <wxmiddleware.config.WxConfig.from_env>` builds its configuration from: the variables
    of ``env`` that set the fields ``field_names`` (in that order), ``WX_APPS`` or
    ``WX_APPS_FILE``, then ``overrides``; checked for a missing appid or secret and, unless
    ``appid_check`` (else ``WX_APPID_CHECK``) is off, for appids of the wrong shape."""
    values: Dict[str, Any] = {}
    for name in field_names:
        variable = ENV_VARIABLES.get(name)
        if variable is None or not env.get(variable, "").strip():
            continue
        values[name] = _CONVERTERS[_FIELD_KINDS.get(name, "str")](env[variable], variable)
    apps_text, apps_file = env.get("WX_APPS", "").strip(), env.get("WX_APPS_FILE", "").strip()
    if apps_text and apps_file:
        raise ConfigError("set WX_APPS or WX_APPS_FILE, not both")
    if apps_text or apps_file:
        values["apps"] = app_tuple(apps_text) if apps_text else load_apps_file(apps_file)
    values.update(canonical(overrides))
    apps = app_tuple(values.get("apps") or ())
    if not apps:
        for name in ("appid", "secret"):
            if name == "secret" and values.get("component_appid"):
                continue
            if not str(values.get(name) or "").strip():
                raise ConfigError(
                    f"{ENV_VARIABLES[name]} is not set: the WeChat {name} is required"
                )
    if appid_check is None:
        appid_check = parse_bool(env.get("WX_APPID_CHECK", "1") or "1", "WX_APPID_CHECK")
    if appid_check:
        if not apps:
            platform = str(values.get("platform") or DEFAULT_PLATFORM)
            check_appid_shape(str(values["appid"]).strip(), platform=platform)
        for app in apps:
            check_appid_shape(app.appid, "an appid of WX_APPS", app.platform)
    return values


def check_appid_shape(
    appid: str, variable: str = "WX_APPID", platform: str = DEFAULT_PLATFORM
) -> None:
    """Raise :class:`ConfigError` unless ``appid`` has the shape of an appid of
    ``platform`` (:data:`~wxmiddleware._apps.PLATFORM_INFO`; an unknown platform is left to
    :class:`WxConfig` to refuse).

    The message never repeats the value: a secret pasted into ``WX_APPID`` would otherwise
    reach the log.
    """
    info = PLATFORM_INFO.get(platform)
    if info is None or info.appid_shape.fullmatch(appid):
        return
    hint = (
        " (32 hex digits: is that the AppSecret?)"
        if platform == DEFAULT_PLATFORM and re.fullmatch(r"[0-9a-fA-F]{32}", appid)
        else f" (got {len(appid)} characters)"
    )
    article = "an" if info.title[0] in "AEIOU" else "a"
    raise ConfigError(
        f"{variable} must be {article} {info.title} mini-program appid, {info.appid_hint}"
        f"{hint}; for another platform name it in WX_APPS (douyin:tt…:secret) or"
        " WX_PLATFORM; for an appid of another shape set WX_APPID_CHECK=0"
        " (or WxConfig.from_env(appid_check=False))"
    )
