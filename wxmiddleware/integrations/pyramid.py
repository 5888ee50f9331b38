"""Pyramid: a security policy for the WeChat session.

https://docs.pylonsproject.org/projects/pyramid/en/latest/narr/security.html

.. code-block:: python

    with Configurator() as config:
        config.include("wxmiddleware.integrations.pyramid")
        ...
    app = WxMiddleware(config.make_wsgi_app(), config=WxConfig.from_env())

Views then use ``request.identity`` (the :class:`~wxmiddleware.WxSession`),
``request.authenticated_userid`` (the openid) and ``permission=`` checked against the
context's ``__acl__``.
"""

from __future__ import annotations

from typing import Any, List, Optional

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.response import Response

from .._accessors import session_of
from ..session import WxSession
from . import unauthorized

__all__ = ["WxSecurityPolicy", "includeme"]


class WxSecurityPolicy:
    """Pyramid's ``ISecurityPolicy`` over the session :class:`~wxmiddleware.WxMiddleware`
    attached to the request.

    ``identity`` is the session (``None`` on an optional path without a valid token);
    ``authenticated_userid`` its openid; ``permits`` checks the context's ``__acl__`` with
    the principals ``Everyone`` and, with a session, ``Authenticated`` and
    ``"openid:<openid>"``. ``remember`` and ``forget`` add no headers: the login and logout
    paths give and end sessions.
    """

    def identity(self, request: Any) -> Optional[WxSession]:
        """The request's :class:`~wxmiddleware.WxSession`, or ``None``."""
        return session_of(request)

    def authenticated_userid(self, request: Any) -> Optional[str]:
        """The openid, or ``None``."""
        session = session_of(request)
        return None if session is None else session.openid

    def principals(self, request: Any) -> List[str]:
        """The principals the ACL is checked with."""
        session = session_of(request)
        if session is None:
            return [Everyone]
        return [Everyone, Authenticated, f"openid:{session.openid}"]

    def permits(self, request: Any, context: Any, permission: str) -> Any:
        """An ``ACLAllowed``/``ACLDenied`` (truthy when allowed)."""
        return ACLHelper().permits(context, self.principals(request), permission)

    def remember(self, request: Any, userid: Any, **kw: Any) -> List[Any]:
        """No headers: a session comes from the login path."""
        return []

    def forget(self, request: Any, **kw: Any) -> List[Any]:
        """No headers: the logout path ends a session."""
        return []


def _forbidden(request: Any) -> Any:
    """A denied permission: the middleware's ``401`` JSON without a session, Pyramid's
    ``403`` with one (the user is known and may not do this)."""
    if session_of(request) is not None:
        return request.exception
    answer = unauthorized()
    return Response(body=answer.body, status=answer.status, headerlist=list(answer.headers))


def includeme(config: Any) -> None:
    """``config.include("wxmiddleware.integrations.pyramid")``: the security policy, and a
    forbidden view that answers a request without a session with the middleware's 401."""
    config.set_security_policy(WxSecurityPolicy())
    config.add_forbidden_view(_forbidden)
