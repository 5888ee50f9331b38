"""WxMiddleware: WeChat mini-program login for any WSGI application."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional

from . import core
from .config import WxConfig
from .core import RequestKind
from .errors import BadRequest, InvalidSession, WxError
from .session import WxSession, code_key, short_hash, token_key
from .stores import SessionStore, open_store
from .wechat import WeChatClient

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("wxmiddleware")

#: ``on_login(session, environ)`` may return extra fields for the login answer.
LoginHook = Callable[[WxSession, "WSGIEnvironment"], Optional[Mapping[str, Any]]]


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def _header_lookup(environ: WSGIEnvironment) -> core.HeaderLookup:
    def header(name: str) -> Optional[str]:
        value: Optional[str] = environ.get(_environ_key(name))
        return value

    return header


class WxMiddleware:
    """Wrap a WSGI app with WeChat mini-program login.

    The middleware answers the login path (``POST /wx/login``) and the logout path
    (``POST /wx/logout``) itself. Every other request must carry a session token in the
    ``3rd-session`` header (or ``X-WX-Skey``) unless its path is public or optional; it is
    rejected with ``401`` JSON otherwise. For an accepted request these environ keys are set
    before the wrapped app runs:

    - ``wxmiddleware.session``: the :class:`~wxmiddleware.WxSession` (``None`` on an optional
      path without a valid token)
    - ``wxmiddleware.openid``, ``wxmiddleware.session_key``, ``wxmiddleware.unionid``
    - ``REMOTE_USER``: the openid

    ``session_key`` is for server-side use (decrypting user data); never send it to a client.

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
    :param on_login: called after each successful login; the mapping it returns is added to
        the login answer. For a Wafer login, ``environ["wxmiddleware.userinfo"]`` holds the
        ``userinfo`` being answered (the decrypted user info, when the client sent it).
    """

    def __init__(
        self,
        app: WSGIApplication,
        config: Optional[WxConfig] = None,
        *,
        store: Optional[SessionStore] = None,
        wechat: Optional[WeChatClient] = None,
        on_login: Optional[LoginHook] = None,
        **options: Any,
    ) -> None:
        self.app = app
        self.config = core.resolve_config(config, options)
        self.store = (
            store if store is not None else open_store(self.config.store, self.config.appid)
        )
        self.wechat = wechat if wechat is not None else WeChatClient(self.config)
        self.on_login = on_login
        self._router = core.Router(self.config)
        self._token_keys = tuple(dict.fromkeys(_environ_key(h) for h in self.config.token_headers))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        kind = self._router.classify(
            environ.get("PATH_INFO", ""), environ.get("RAW_URI") or environ.get("REQUEST_URI")
        )
        if kind is RequestKind.PUBLIC:
            return self.app(environ, start_response)
        try:
            if kind is RequestKind.LOGIN:
                response = self._login(environ)
            elif kind is RequestKind.LOGOUT:
                response = self._logout(environ)
            else:
                session = self._authenticate(environ, kind)
                response = None
        except WxError as error:
            response = self._error_response(environ, kind, error)
        except Exception as exc:  # a fault of ours answers JSON, without a traceback
            logger.error("internal error: %s", type(exc).__name__)
            response = self._error_response(environ, kind, WxError())
        if response is None:
            self._attach(environ, session)
            return self.app(environ, start_response)
        start_response(response.status_line, list(response.headers))
        return [response.body] if response.body else []

    def _error_response(
        self, environ: WSGIEnvironment, kind: RequestKind, error: WxError
    ) -> core.Response:
        wafer = core.wafer_error(self.config, kind, error, _header_lookup(environ))
        return core.error_response(error, wafer)

    def _token(self, environ: WSGIEnvironment) -> Optional[str]:
        values = [environ[key] for key in self._token_keys if key in environ]
        return core.pick_token(values) if values else None

    def _authenticate(self, environ: WSGIEnvironment, kind: RequestKind) -> Optional[WxSession]:
        token = self._token(environ)
        if token is None:
            if kind is RequestKind.OPTIONAL:
                return None
            raise core.missing_token_error(self.config)
        try:
            session = self.store.get(token, self.config.session_ttl)
        except WxError as error:
            core.log_failure("session lookup", error, short_hash(token_key(token)))
            raise
        if session is None and kind is RequestKind.PROTECTED:
            raise InvalidSession()
        return session

    @staticmethod
    def _attach(environ: WSGIEnvironment, session: Optional[WxSession]) -> None:
        environ["wxmiddleware.session"] = session
        if session is None:
            environ["wxmiddleware.openid"] = None
            environ["wxmiddleware.session_key"] = None
            environ["wxmiddleware.unionid"] = None
            return
        environ["wxmiddleware.openid"] = session.openid
        environ["wxmiddleware.session_key"] = session.session_key
        environ["wxmiddleware.unionid"] = session.unionid
        environ["REMOTE_USER"] = session.openid

    def _read_body(self, environ: WSGIEnvironment) -> bytes:
        length = core.body_length(environ.get("CONTENT_LENGTH"), self.config)
        stream = environ.get("wsgi.input")
        if stream is None or length == 0:
            return b""
        limit = self.config.max_body_bytes
        try:
            if length is not None:
                return bytes(stream.read(length))
            if environ.get("wsgi.input_terminated"):
                # Chunked: read one byte past the limit to tell "at the limit" from "over it".
                body = bytes(stream.read(limit + 1))
                if len(body) > limit:
                    raise core.body_too_large(self.config)
                return body
        except (OSError, ValueError):
            raise BadRequest("The login body could not be read.") from None
        if environ.get("HTTP_TRANSFER_ENCODING"):
            raise BadRequest("Send the login body with a Content-Length.")
        return b""

    def _login(self, environ: WSGIEnvironment) -> core.Response:
        method = environ.get("REQUEST_METHOD", "GET")
        wafer = core.wafer_login(self.config, _header_lookup(environ))
        core.check_login_method(method, self.config, wafer is not None)
        if wafer is not None:
            code = wafer.code
        elif method == "GET":
            code = core.login_code_from_query(environ.get("QUERY_STRING", ""))
        else:
            code = core.login_code_from_body(environ.get("CONTENT_TYPE"), self._read_body(environ))
        try:
            token, session = core.run_login(core.login_flow(code, self.config), self._perform)
            userinfo = None if wafer is None else core.wafer_userinfo(wafer, session, self.config)
        except WxError as error:
            core.log_failure("login", error, f"code={short_hash(code_key(code))}")
            raise
        logger.info("login: session %s", short_hash(token_key(token)))
        if userinfo is not None:
            environ["wxmiddleware.userinfo"] = userinfo
        extra = self.on_login(session, environ) if self.on_login is not None else None
        if userinfo is None:
            return core.login_response(token, session, self.config, extra)
        return core.wafer_login_response(token, userinfo, extra)

    def _perform(self, effect: core.Effect) -> Any:
        if isinstance(effect, core.ClaimCode):
            return self.store.claim_code(effect.code_key, effect.ttl)
        if isinstance(effect, core.LoadSession):
            return self.store.get(effect.token, effect.idle_ttl)
        if isinstance(effect, core.ExchangeCode):
            return self.wechat.code_to_session(effect.code)
        if isinstance(effect, core.SaveSession):
            return self.store.save(
                effect.token, effect.session, effect.idle_ttl, effect.code_key, effect.sealed_token
            )
        if isinstance(effect, core.ReleaseCode):
            return self.store.release_code(effect.code_key)
        time.sleep(effect.seconds)
        return None

    def _logout(self, environ: WSGIEnvironment) -> core.Response:
        core.check_logout_method(environ.get("REQUEST_METHOD", "GET"))
        token = self._token(environ)
        if token is None:
            raise core.missing_token_error(self.config)
        try:
            ended = self.store.delete(token)
        except WxError as error:
            core.log_failure("logout", error, short_hash(token_key(token)))
            raise
        if ended:
            logger.info("logout: session %s", short_hash(token_key(token)))
        return core.logout_response()
