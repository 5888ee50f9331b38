"""Which app a request is for, when one middleware serves several mini-programs.

Decided once here for both adapters, and only when ``WxConfig.apps`` names more than one
app: a single-app configuration reads neither header. The order is WeChat's ``Referer``
first (every ``wx.request`` of a mini-program carries
``https://servicewechat.com/{appid}/{version}/page-frame.html``, which the page cannot
change; ``version`` is ``devtools`` in the IDE, ``0`` for a preview), then the
``X-WX-Appid`` header (for clients that are not a mini-program page). Every malformed or
conflicting answer is a ``400`` that names the header, decided before the store or WeChat
is asked anything.

The platform of a request is its app's (``WxApp.platform``). Only WeChat documents the
``Referer`` its mini-programs send; the other platforms' requests carry a page of their own
host (Douyin's ``tmaservice.developer.toutiao.com``, reported by developers, not by
ByteDance), which names no app the server could trust, so when any configured app is not
a WeChat app, a ``Referer`` that is not a ``servicewechat.com`` page is not read and the
``X-WX-Appid`` header names the app (docs/platforms.md). A configuration of WeChat apps
alone keeps refusing such a ``Referer``.
"""

from __future__ import annotations

import re
from typing import Dict, NamedTuple, Optional

from .._apps import APPID_PATTERN
from ..config import WxConfig
from ..errors import BadRequest
from ..session import SessionScope
from ._view import APPID_HEADER, HeaderMap, HeaderNames

#: The page every ``wx.request`` of a WeChat mini-program names in its ``Referer``.
WECHAT_REFERER = re.compile(r"https://servicewechat\.com/([^/?#]*)/[^/?#]+/page-frame\.html")


class App(NamedTuple):
    """One configured app as a request uses it: its own configuration (its appid and
    secret, :meth:`WxConfig.for_app`) and the scope of its sessions in the store."""

    config: WxConfig
    scope: SessionScope


def _appid(value: str, header: str) -> str:
    if not APPID_PATTERN.fullmatch(value):
        raise BadRequest(
            f"The {header} header does not name an appid (1 to 64 letters, digits or _)."
        )
    return value


class AppSelector:
    """Picks the app of a request among those of a several-app configuration.

    Built once by the pipeline with its :class:`HeaderNames` (whose ``referer`` and
    ``appid`` keys are set for such a configuration). :meth:`select` raises
    :class:`~wxmiddleware.errors.BadRequest` for a ``Referer`` that is not a mini-program
    page, an appid outside ``[A-Za-z0-9_]``, a ``Referer`` and ``X-WX-Appid`` that name
    different apps, an app that is not configured, or a request that names none.
    """

    def __init__(self, config: WxConfig, names: HeaderNames) -> None:
        self._referer = names.referer
        self._header = names.appid
        self._apps: Dict[str, App] = {}
        for appid in config.app_ids:
            app_config = config.for_app(appid)
            self._apps[appid] = App(app_config, SessionScope.for_config(app_config))
        #: Whether a Referer of another host is another platform's page, not an error.
        self._other_pages = any(app.platform != "wechat" for app in config.apps)

    def select(self, headers: HeaderMap) -> App:
        """The app ``headers`` name (see the class docstring for the errors)."""
        referer: Optional[str] = headers.get(self._referer)
        named: Optional[str] = headers.get(self._header)
        appid = None
        source = APPID_HEADER
        if referer and self._other_pages and not referer.startswith("https://servicewechat.com/"):
            referer = None  # another platform's page: it names no app we can trust
        if referer:
            page = WECHAT_REFERER.fullmatch(referer)
            if page is None:
                raise BadRequest(
                    "The Referer header is not a mini-program page: WeChat sends"
                    " https://servicewechat.com/{appid}/{version}/page-frame.html."
                )
            appid = _appid(page.group(1), "Referer")
            source = "Referer"
        if named:
            from_header = _appid(named.strip(), APPID_HEADER)
            if appid is not None and from_header != appid:
                raise BadRequest(f"The Referer and the {APPID_HEADER} header name different apps.")
            appid = from_header
        if appid is None:
            raise BadRequest(
                "The request does not say which mini-program it is for: send the"
                f" {APPID_HEADER} header (a mini-program's Referer names it)."
            )
        app = self._apps.get(appid)
        if app is None:
            raise BadRequest(
                f"The {source} header names app {appid}, which this server does not serve."
            )
        return app
