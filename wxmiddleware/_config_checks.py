"""The checks :class:`~wxmiddleware.config.WxConfig` runs on its fields, and the forms it
normalises them to: sequences of strings, origins, paths, API bases, store keys, numbers
and rate limits. Each raises :class:`~wxmiddleware.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Dict, Mapping, Tuple

from ._apps import DEFAULT_PLATFORM, PLATFORM_INFO
from ._sealing import MIN_STORE_KEY_LENGTH
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import WxConfig

# The notation of the limits library (limits.util.EXPR): "10/minute", "5 per 2 hours",
# several joined by ",", ";" or "|".
_ONE_RATE = (
    r"\s*[0-9]+\s*(?:/|\s*per\s*)\s*(?:[0-9]+\s*)?(?:second|minute|hour|day|month|year)s?\s*"
)
_RATE_LIMIT = re.compile(rf"^{_ONE_RATE}(?:[,;|]{_ONE_RATE})*$", re.IGNORECASE)

# An origin as browsers serialise it (Fetch, section 3.1 "Origin header"; HTML's
# "serialization of an origin"): scheme, host and optional port; no path, no userinfo.
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@\s*]+$")

#: The field that holds each platform's API base.
API_BASE_FIELDS = {
    name: "api_base" if name == DEFAULT_PLATFORM else f"api_base_{name}" for name in PLATFORM_INFO
}


def as_tuple(value: Any, name: str) -> Tuple[str, ...]:
    """``value`` (a sequence of strings, or one comma-separated string) as a tuple of
    strings; :class:`ConfigError` naming ``name`` for anything else."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    try:
        items = tuple(value)
    except TypeError:
        raise ConfigError(f"{name} must be a sequence of strings") from None
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{name} must contain only strings, got {item!r}")
    return items


def origins(value: Any) -> Tuple[str, ...]:
    """``cors_origins`` validated: ``("*",)`` alone, or exact origins in lower case."""
    found = tuple(origin.lower() for origin in as_tuple(value, "cors_origins"))
    if "*" in found:
        if len(found) > 1:
            raise ConfigError("cors_origins: '*' allows every origin; give it alone")
        return found
    for origin in found:
        if not _ORIGIN.match(origin):
            raise ConfigError(
                f"cors_origins: {origin!r} is not an origin: write scheme://host[:port],"
                " without a path or trailing slash (e.g. https://h5.example.com)"
            )
    return found


def api_base(value: Any, name: str) -> str:
    """The API base of the field ``name``: an http(s) URL, without its trailing slash."""
    if not isinstance(value, str) or not re.match(r"^https?://[^/?#]+(/[^?#]*)?$", value):
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def check_path(path: str, name: str) -> None:
    """Refuse a ``path`` of the field ``name`` that is not a plain absolute path."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"{name}: {path!r} must be a path starting with '/'")
    if "?" in path or "#" in path or "%" in path:
        raise ConfigError(f"{name}: {path!r} must be a plain path without query or escapes")


def check_paths(config: WxConfig) -> None:
    """Check the login and logout paths and the entries of ``public_paths`` and
    ``optional_paths``."""
    for name in ("login_path", "logout_path"):
        check_path(getattr(config, name), name)
    for name in ("public_paths", "optional_paths"):
        for path in getattr(config, name):
            check_path(path, name)
    if config.login_path == config.logout_path:
        raise ConfigError("login_path and logout_path must differ")


def store_keys(value: Any) -> Tuple[str, ...]:
    """``store_key`` as a tuple, each key at least ``MIN_STORE_KEY_LENGTH`` characters."""
    keys = as_tuple(value, "store_key")
    if any(len(key) < MIN_STORE_KEY_LENGTH for key in keys):
        raise ConfigError(f"each store_key must be at least {MIN_STORE_KEY_LENGTH} characters")
    return keys


def check_numbers(config: WxConfig) -> None:
    """Check the numeric fields (lifetimes, sizes, counts, timeouts, proxies) and the rate
    limits."""
    for name in (
        "session_ttl",
        "session_max_age",
        "max_body_bytes",
        "code_ttl",
        "max_sessions_per_user",
    ):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    for name in ("login_rate_limit", "app_login_rate_limit"):
        value = getattr(config, name)
        if value is not None and not (isinstance(value, str) and _RATE_LIMIT.match(value)):
            raise ConfigError(
                f"{name} must be a rate limit such as '10/minute' or '5/minute;50/day',"
                f" got {value!r}"
            )
    if (
        isinstance(config.trusted_proxies, bool)
        or not isinstance(config.trusted_proxies, int)
        or config.trusted_proxies < 0
    ):
        raise ConfigError(
            f"trusted_proxies must be a number of proxies (0 or more), got"
            f" {config.trusted_proxies!r}"
        )
    if config.session_max_age < config.session_ttl:
        raise ConfigError("session_max_age must be at least session_ttl")
    if not 64 <= config.max_body_bytes <= 1024 * 1024:
        raise ConfigError("max_body_bytes must be between 64 and 1048576")
    for name in ("connect_timeout", "read_timeout"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")


def check_store_url(store: Any) -> None:
    """Refuse a ``store`` that is neither ``None`` nor a URL."""
    if store is not None and (not isinstance(store, str) or "://" not in store):
        raise ConfigError(f"store must be a store URL such as sqlite:///path, got {store!r}")


def canonical(options: Mapping[str, Any]) -> Dict[str, Any]:
    """``options`` with the alias ``idle_ttl`` renamed to ``session_ttl``."""
    values = dict(options)
    if "idle_ttl" in values:
        idle_ttl = values.pop("idle_ttl")
        if "session_ttl" in values and values["session_ttl"] != idle_ttl:
            raise ConfigError("idle_ttl is an alias of session_ttl: give one of them")
        values["session_ttl"] = idle_ttl
    return values
