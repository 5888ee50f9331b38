"""Every mini-program platform's code exchange behind one interface: the providers.

A login is the same on every platform: the mini-program gets a one-time code
(``wx.login``, ``qq.login``, ``tt.login``, ``swan.login``, ``ks.login``,
``my.getAuthCode``), the server exchanges it for the user's id in the app and, on most
platforms, a session key. A :class:`Provider` knows one platform's side of that: the request
(:meth:`Provider.request`), how its answer reads (:meth:`Provider.parse`, into one
:class:`~wxmiddleware.wechat._protocol.CodeSession`) and which of its error codes mean
what (:attr:`Provider.errors`, mapped once, here, by :func:`refusal` onto the package's
error family). The login flow (:mod:`._login`) asks :func:`exchange_code`, which picks the
app's provider; everything after the exchange (the session, the stores, the token, the
errors' JSON) is the same for every platform.

The one retry rule holds for every platform (:func:`._upstream.send`): a platform's "busy"
answer (one that says it did nothing) and a connection that never opened are retried once;
nothing else is, so a code is never spent twice.

Every answer that is not the documented shape (another status, not JSON, an HTML error
page, a missing user id, an unknown error code) is a ``502`` and nothing is stored; error
details name a platform's code and message, never the secret, a key, the code or a session
key. Sources are cited on each provider; docs/platforms.md has the table.

The interface is :mod:`._providers_base`'s; the providers are :mod:`._providers_secret`'s
(WeChat, QQ, Douyin, Baidu, Kuaishou) and :mod:`._providers_alipay`'s; this module holds the
table of them, :data:`PROVIDERS`, and :func:`exchange_code`.
"""

from __future__ import annotations

from typing import Dict

from ..config import WxConfig
from ..wechat._protocol import CodeSession
from ._effects import Flow
from ._providers_alipay import AlipayProvider
from ._providers_base import LoginCode, Provider, refusal
from ._providers_secret import (
    BaiduProvider,
    DouyinProvider,
    KuaishouProvider,
    QQProvider,
    WeChatProvider,
)

__all__ = ["PROVIDERS", "LoginCode", "Provider", "exchange_code", "refusal"]


#: One provider per platform, by name.
PROVIDERS: Dict[str, Provider] = {
    provider.platform: provider
    for provider in (
        WeChatProvider(),
        QQProvider(),
        DouyinProvider(),
        BaiduProvider(),
        KuaishouProvider(),
        AlipayProvider(),
    )
}


def exchange_code(config: WxConfig, login: LoginCode) -> Flow[CodeSession]:
    """Exchange ``login`` through the provider of ``config.platform`` (``config`` is one
    app's configuration); see :class:`Provider`."""
    return PROVIDERS[config.platform].exchange(config, login)
