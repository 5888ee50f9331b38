"""The link between a WeChat user and a Django user."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class WxAccount(models.Model):
    """One WeChat user of one mini-program (``appid``, ``openid``), linked to a Django user.

    Created by :class:`~wxmiddleware.integrations.django.backends.WxSessionBackend` on the
    user's first login. ``unionid`` is set when the mini-program is bound to an
    open-platform account; a user who logs in to a second mini-program of that account gets
    the Django user of the first (the same unionid). ``user.wx_accounts`` lists a user's
    accounts. Deleting the Django user deletes its accounts.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wx_accounts"
    )
    appid = models.CharField(max_length=64)
    openid = models.CharField(max_length=128)
    unionid = models.CharField(max_length=128, null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "WeChat account"
        constraints = [  # noqa: RUF012 (Django reads a list)
            models.UniqueConstraint(fields=["appid", "openid"], name="wxaccount_appid_openid")
        ]

    def __str__(self) -> str:
        return f"{self.openid} ({self.appid})"
