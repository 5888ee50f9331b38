"""WxMiddleware: WeChat mini-program login for any WSGI application.

The adapter only translates: the environ is handed to the core's pipeline (its method, paths
and headers; a :class:`~wxmiddleware.core.RequestView` of it when the pipeline asks), the
:class:`~wxmiddleware._perform.SyncPerformer` runs the plan, and the outcome becomes a call
of the app or an answer through ``start_response``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, cast

from ._middleware import MiddlewareBase
from ._perform import SyncPerformer
from .core import Forward, RequestView, Respond
from .session import WxSession
from .stores import SessionStore, open_store
from .wechat.sync import WeChatClient

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: ``on_login(session, environ)`` may return extra fields for the login answer.
LoginHook = Callable[[WxSession, "WSGIEnvironment"], Optional[Mapping[str, Any]]]


def _environ_key(name: str) -> str:
    # PEP 3333: HTTP_ + upper case with "_" for "-", except the two the server keeps apart.
    if name in ("content-type", "content-length"):
        return name.upper().replace("-", "_")
    return "HTTP_" + name.upper().replace("-", "_")


def _read_body(environ: WSGIEnvironment, length: Optional[int], limit: int) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    # Without a length, one byte past the limit tells "at the limit" from "over it".
    return bytes(stream.read(limit + 1 if length is None else length))


class WxMiddleware(
    MiddlewareBase[Callable[..., Iterable[bytes]], SessionStore, WeChatClient, LoginHook]
):
    """Wrap a WSGI app with WeChat mini-program login.

    The middleware answers the login path (``POST /wx/login``) and the logout path
    (``POST /wx/logout``) itself. Every other request must carry a session token in the
    ``3rd-session`` header (or ``X-WX-Skey``) unless its path is public or optional; it is
    rejected with ``401`` JSON otherwise. For an accepted request these environ keys are set
    before the wrapped app runs:

    - ``wxmiddleware.session``: the :class:`~wxmiddleware.WxSession` (``None`` on an optional
      path without a valid token)
    - ``wxmiddleware.openid``, ``wxmiddleware.session_key``, ``wxmiddleware.unionid``,
      ``wxmiddleware.appid`` (the app the session belongs to), ``wxmiddleware.platform``
      (its platform: ``wechat``, ``qq``, ``douyin``, ``baidu``, ``kuaishou``, ``alipay``)
    - ``REMOTE_USER``: the openid

    ``session_key`` is for server-side use (decrypting user data); never send it to a client.
    The app's answer (its iterable) is returned unchanged, so its ``close()`` still runs.

    With ``wafer_compat`` (the default), clients of Tencent's Wafer SDK work unchanged: a
    login with its code in ``X-WX-Code`` (``GET`` or ``POST``) is answered
    ``{"code": 0, "data": {"skey": ..., "userinfo": {...}}}``, its errors carry
    ``"code": -1``, and so does a ``401`` to a request that sent ``X-WX-Skey``.

    .. code-block:: python

        app.wsgi_app = WxMiddleware(app.wsgi_app, appid="wx...", secret="...")
        # or: WxMiddleware(app.wsgi_app, config=WxConfig.from_env())

    :param app: the WSGI application to wrap.
    :param config: a :class:`~wxmiddleware.WxConfig`; keyword ``options`` override its fields
        (or build one when ``config`` is omitted).
    :param store: a session store; by default the one ``config.store`` names, else SQLite.
    :param wechat: the WeChat client; by default a :class:`~wxmiddleware.wechat.WeChatClient`.
    :param on_login: called after each successful login; the mapping it returns is added to
        the login answer. For a Wafer login, ``environ["wxmiddleware.userinfo"]`` holds the
        ``userinfo`` being answered (the decrypted user info, when the client sent it).
    """

    performer_class = SyncPerformer
    client_class = WeChatClient
    _performer: SyncPerformer[WSGIEnvironment]
    _open_store = staticmethod(open_store)
    # The environ is the pipeline's header map: it reads HTTP_3RD_SESSION, not 3rd-session.
    _header_key = staticmethod(_environ_key)
    _read_body = staticmethod(_read_body)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        plan = self._pipeline.handle(
            environ,
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", ""),
            environ.get("RAW_URI") or environ.get("REQUEST_URI"),
            environ,
        )
        outcome = self._performer.run_request(plan, environ)
        if isinstance(outcome, Forward):
            if outcome.attach:
                _attach(environ, outcome.session)
            return self.app(environ, start_response)
        # Only an ASGI body reader sees a client leave (DROP): here the outcome is an answer.
        response = cast(Respond, outcome).response
        start_response(response.status_line, list(response.headers))
        return [response.body] if response.body else []

    def _view(self, environ: WSGIEnvironment) -> RequestView:
        # What __call__ hands the pipeline, and the rest of the request.
        return RequestView(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", ""),
            environ.get("RAW_URI") or environ.get("REQUEST_URI"),
            environ.get("QUERY_STRING", ""),
            environ,
            False,
            environ.get("wsgi.input_terminated", False),
            environ.get("REMOTE_ADDR"),
        )

    def _call_hook(
        self, environ: WSGIEnvironment, session: WxSession, userinfo: Optional[Mapping[str, Any]]
    ) -> Optional[Mapping[str, Any]]:
        assert self.on_login is not None  # the pipeline asks only when it is set
        if userinfo is not None:
            environ["wxmiddleware.userinfo"] = userinfo
        return self.on_login(session, environ)

    def close(self) -> None:
        """Close the store and WeChat client this middleware opened (not ones passed in)."""
        for opened in self._owned:
            opened.close()


def _attach(environ: WSGIEnvironment, session: Optional[WxSession]) -> None:
    environ["wxmiddleware.session"] = session
    if session is None:
        environ["wxmiddleware.openid"] = None
        environ["wxmiddleware.session_key"] = None
        environ["wxmiddleware.unionid"] = None
        environ["wxmiddleware.appid"] = None
        environ["wxmiddleware.platform"] = None
        return
    environ["wxmiddleware.openid"] = session.openid
    environ["wxmiddleware.session_key"] = session.session_key
    environ["wxmiddleware.unionid"] = session.unionid
    environ["wxmiddleware.appid"] = session.appid
    environ["wxmiddleware.platform"] = session.platform
    environ["REMOTE_USER"] = session.openid
