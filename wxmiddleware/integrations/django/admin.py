"""The admin for WeChat accounts (https://docs.djangoproject.com/en/stable/ref/contrib/admin/)."""

from __future__ import annotations

from django.contrib import admin

from .models import WxAccount


@admin.register(WxAccount)
class WxAccountAdmin(admin.ModelAdmin):
    """Lists WeChat accounts with their Django users; searchable by openid, unionid and
    username."""

    list_display = ("openid", "appid", "unionid", "user", "created_at")
    list_filter = ("appid",)
    search_fields = ("openid", "unionid", "user__username")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)
