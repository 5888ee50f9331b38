"""The authentication backend: a WeChat session to a Django user.

https://docs.djangoproject.com/en/stable/topics/auth/customizing/#writing-an-authentication-backend
"""

from __future__ import annotations

from typing import Any, Optional

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import IntegrityError, transaction

from ...session import WxSession
from .models import WxAccount


class WxSessionBackend(ModelBackend):
    """Authenticates a :class:`~wxmiddleware.WxSession` as the Django user linked to its
    openid, creating both on the user's first login.

    :class:`~.middleware.WxLoginMiddleware` calls ``django.contrib.auth.authenticate(request,
    wx_session=session, wx_appid=appid)`` after each WeChat login; other credentials are not
    this backend's (it answers ``None``). Permissions come from :class:`ModelBackend`: the
    user's own and its groups', as for any Django user (an inactive user has none).

    Subclass it to change what a new user looks like: :meth:`create_user` makes the user
    (by default one named ``wx_<openid>`` with an unusable password); set
    ``create_unknown_user = False`` to let only users linked beforehand log in.
    """

    #: Create a Django user for an openid seen for the first time.
    create_unknown_user = True

    def authenticate(
        self,
        request: Any,
        wx_session: Optional[WxSession] = None,
        wx_appid: Optional[str] = None,
        **credentials: Any,
    ) -> Any:
        """The user linked to ``wx_session`` in mini-program ``wx_appid``, or ``None``."""
        if wx_session is None or wx_appid is None:
            return None
        return self.user_for_session(request, wx_session, wx_appid)

    def user_for_session(self, request: Any, session: WxSession, appid: str) -> Any:
        """The Django user of ``session``'s openid in ``appid``; linked (and created, when
        :attr:`create_unknown_user`) on first sight. ``None`` for an unknown user when
        creating is off."""
        account = (
            WxAccount.objects.select_related("user")
            .filter(appid=appid, openid=session.openid)
            .first()
        )
        if account is not None:
            if session.unionid is not None and account.unionid != session.unionid:
                account.unionid = session.unionid
                account.save(update_fields=["unionid"])
            return account.user
        if not self.create_unknown_user:
            return None
        try:
            with transaction.atomic():
                user = self._unionid_user(session) or self.create_user(request, session, appid)
                account = WxAccount.objects.create(
                    user=user, appid=appid, openid=session.openid, unionid=session.unionid
                )
        except IntegrityError:
            # The same user's first login on two workers at once: the other one linked it.
            account = WxAccount.objects.select_related("user").get(
                appid=appid, openid=session.openid
            )
        return account.user

    def create_user(self, request: Any, session: WxSession, appid: str) -> Any:
        """A new Django user for ``session`` (``request`` is the login request)."""
        model = get_user_model()
        fields = {model.USERNAME_FIELD: f"wx_{session.openid}"}
        return model._default_manager.create_user(**fields)

    @staticmethod
    def _unionid_user(session: WxSession) -> Any:
        if session.unionid is None:
            return None
        linked = WxAccount.objects.select_related("user").filter(unionid=session.unionid).first()
        return None if linked is None else linked.user
