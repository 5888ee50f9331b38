"""WeChat login as a Django app: add ``"wxmiddleware.integrations.django"`` to
``INSTALLED_APPS``, :class:`~.middleware.WxLoginMiddleware` to ``MIDDLEWARE`` and
:class:`~.backends.WxSessionBackend` to ``AUTHENTICATION_BACKENDS``.

The middleware runs the same pipeline as :class:`~wxmiddleware.WxMiddleware` (login and
logout paths, the token, every error answer) with settings from ``settings.WXMIDDLEWARE`` or
the ``WX_*`` environment; the backend maps each WeChat user to a Django user, created on the
first login and linked by a :class:`~.models.WxAccount` (appid, openid, unionid), so
``request.user``, ``@login_required``, ``LoginRequiredMixin``, permissions and the admin
work. See https://docs.djangoproject.com/en/stable/topics/auth/customizing/.
"""
