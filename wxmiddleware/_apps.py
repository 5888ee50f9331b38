"""Several mini-programs on one backend: the apps of one configuration, and how they are
written down (``WX_APPS``, an apps file).

An app is a platform (only ``wechat`` for now), an appid, and either its AppSecret or
nothing: an app without a secret logs in through a WeChat third-party platform
(``component_appid`` and ``component_token`` of :class:`~wxmiddleware.WxConfig`).

The written form of one app, in ``WX_APPS`` (comma-separated) and in a text apps file (one
per line), is ``appid:secret``; ``appid`` alone is an app logged in through the third-party
platform; ``platform:appid:secret`` names the platform first. Nothing here repeats a secret
in an error message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Tuple, Union

from .errors import ConfigError

#: The platforms an app may belong to. ``wechat`` is the default and may be left out.
PLATFORMS = ("wechat",)
DEFAULT_PLATFORM = "wechat"
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

    ``appid``: its AppID; ``secret``: its AppSecret (never shown in a ``repr`` or an error),
    or ``""`` for an app that logs in through the third-party platform of the
    configuration (``/sns/component/jscode2session``); ``platform``: ``"wechat"``.
    """

    appid: str
    secret: str = field(default="", repr=False)
    platform: str = DEFAULT_PLATFORM

    def __post_init__(self) -> None:
        check_appid(self.appid)
        if not isinstance(self.secret, str):
            raise ConfigError(f"the secret of app {self.appid} must be a string")
        object.__setattr__(self, "secret", self.secret.strip())
        if self.platform not in PLATFORMS:
            raise ConfigError(
                f"app {self.appid}: platform {self.platform!r} is not supported"
                f" (supported: {', '.join(PLATFORMS)})"
            )

    @property
    def via_component(self) -> bool:
        """Whether the app logs in through the third-party platform (it has no secret)."""
        return not self.secret

    @classmethod
    def parse(cls, entry: str) -> WxApp:
        """One app from its written form: ``appid:secret``, ``appid`` (through the
        third-party platform) or ``platform:appid:secret``. Raises :class:`ConfigError`
        naming the entry's position of fields, never its secret."""
        parts = [part.strip() for part in entry.strip().split(":")]
        if len(parts) == 1:
            return cls(check_appid(parts[0], "an apps entry's appid"))
        if len(parts) == 2:
            appid, secret = parts
            platform = DEFAULT_PLATFORM
        elif len(parts) == 3:
            platform, appid, secret = parts
        else:
            raise ConfigError(
                "an apps entry is appid:secret, platform:appid:secret or a bare appid"
                f" (one had {len(parts)} fields separated by ':')"
            )
        check_appid(appid, "an apps entry's appid")
        if not secret:
            raise ConfigError(f"the apps entry of {appid} has an empty secret")
        return cls(appid, secret, platform)


#: What :func:`app_tuple` accepts: the written form, ``{appid: secret}``, or a sequence of
#: :class:`WxApp`, written entries and mappings with ``appid``, ``secret``, ``platform``.
AppsSpec = Union[str, Mapping[str, str], Iterable[Union[WxApp, str, Mapping[str, Any]]]]


def _one(item: Any) -> WxApp:
    if isinstance(item, WxApp):
        return item
    if isinstance(item, str):
        return WxApp.parse(item)
    if isinstance(item, Mapping):
        unknown = set(item) - {"appid", "secret", "platform"}
        if unknown:
            raise ConfigError(f"an app has unknown fields: {', '.join(sorted(unknown))}")
        return WxApp(
            item.get("appid", ""),
            item.get("secret") or "",
            item.get("platform") or DEFAULT_PLATFORM,
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

    JSON (a list of ``{"appid", "secret", "platform"}`` objects, or an object whose
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
