"""The Django app's configuration (https://docs.djangoproject.com/en/stable/ref/applications/)."""

from __future__ import annotations

from django.apps import AppConfig


class WxMiddlewareConfig(AppConfig):
    """``wxmiddleware.integrations.django``, with the label ``wxmiddleware``: its table is
    ``wxmiddleware_wxaccount``."""

    name = "wxmiddleware.integrations.django"
    label = "wxmiddleware"
    verbose_name = "WeChat login"
    default_auto_field = "django.db.models.BigAutoField"
