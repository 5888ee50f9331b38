"""Alipay's code exchange (:mod:`._providers`): ``alipay.system.oauth.token`` through its
gateway, a request signed with the app's RSA2 key and an answer checked against Alipay's
public key (:mod:`wxmiddleware._alipay_keys`).
"""

from __future__ import annotations

import json
import time
from typing import ClassVar, Mapping, Optional

from ..config import WxConfig
from ..errors import UpstreamError
from ..wechat._protocol import CodeSession
from ._effects import HttpCall
from ._providers_base import (
    BUSY,
    INVALID_CODE,
    MISCONFIGURED,
    ErrorCode,
    LoginCode,
    Provider,
    refusal,
    text,
)

#: Alipay's method for a user's ids from an auth code, and the member of its answer.
ALIPAY_METHOD = "alipay.system.oauth.token"
ALIPAY_ANSWER = "alipay_system_oauth_token_response"
#: Alipay's gateway takes its timestamps in China Standard Time (UTC+8), in seconds.
ALIPAY_UTC_OFFSET = 8 * 3600


def alipay_signed_content(params: Mapping[str, str]) -> bytes:
    """What an Alipay request's ``sign`` signs: every parameter but ``sign`` with a value,
    sorted by name, as ``name=value`` joined by ``&`` (raw values, not URL-encoded),
    UTF-8."""
    pairs = sorted((name, value) for name, value in params.items() if name != "sign" and value)
    return "&".join(f"{name}={value}" for name, value in pairs).encode("utf-8")


def alipay_member(text: str, name: str) -> Optional[str]:
    """The raw JSON text of the top-level member ``name`` of the object ``text`` (what
    Alipay signs in an answer), or ``None`` when there is none."""
    decoder = json.JSONDecoder()
    index = text.find("{") + 1
    length = len(text)
    while index < length:
        while index < length and text[index] in " \t\r\n,":
            index += 1
        if index >= length or text[index] == "}":
            return None
        key, index = decoder.raw_decode(text, index)
        while index < length and text[index] in " \t\r\n:":
            index += 1
        start = index
        _, index = decoder.raw_decode(text, index)
        if key == name:
            return text[start:index]
    return None


class AlipayProvider(Provider):
    """Alipay: ``alipay.system.oauth.token`` through the gateway ``POST
    https://openapi.alipay.com/gateway.do``, for an auth code from ``my.getAuthCode()``.

    The common parameters (``app_id``, ``method``, ``format=JSON``, ``charset=utf-8``,
    ``sign_type=RSA2``, ``timestamp`` as ``yyyy-MM-dd HH:mm:ss`` in UTC+8, ``version=1.0``,
    ``sign``) go in the query string, ``grant_type=authorization_code`` and ``code`` in the
    form body; ``sign`` is the RSA2 (SHA256WithRSA) signature of all of them under the
    app's private key (:func:`alipay_signed_content`). The answer is
    ``{"alipay_system_oauth_token_response": {"user_id", "open_id", "access_token", …},
    "sign"}``, whose ``sign`` over the raw text of that member is checked with Alipay's
    public key (an answer whose signature fails is a ``502``); a failure is
    ``{"error_response": {"code", "msg", "sub_code", "sub_msg"}}``. The user id is
    ``open_id`` (``user_id`` for apps that still get only that); with both, ``user_id`` (the
    same user across apps) is the unionid. Alipay has no session key: the session's is
    ``""``, and Alipay's ``access_token`` is not kept.

    Errors by ``sub_code``: ``isv.code-invalid`` (invalid, used or expired code) ``401``;
    ``isv.invalid-app-id``, ``isv.invalid-signature``, ``isv.missing-signature-key``,
    ``isv.invalid-signature-type``, ``isv.insufficient-isv-permissions`` ``502``;
    ``isp.unknow-error``, ``aop.unknow-error`` (code 20000, "服务暂不可用", retry later)
    busy. Sources: opendocs.alipay.com/apis/api_9/alipay.system.oauth.token (mirrored at
    w3cschool.cn/aliminiapp/aliminiapp-osfv2j24.html and docs.antom.com/ac/solution_api/
    oauth_token: the gateway, the common and request parameters, ``user_id``), the
    gateway's common error codes (open.alitrip.com/docs/doc.htm?articleId=105806: 20000
    isp.unknow-error/aop.unknow-error "稍后重试", 40002 isv.invalid-app-id,
    isv.invalid-signature …), opendocs.alipay.com/support/01rg6z (isv.code-invalid), and
    :mod:`wxmiddleware._alipay_keys` for the signature.
    """

    platform = "alipay"
    errors: ClassVar[Mapping[ErrorCode, str]] = {
        "isv.code-invalid": INVALID_CODE,
        "isv.invalid-app-id": MISCONFIGURED,
        "isv.invalid-signature": MISCONFIGURED,
        "isv.missing-signature-key": MISCONFIGURED,
        "isv.invalid-signature-type": MISCONFIGURED,
        "isv.insufficient-isv-permissions": MISCONFIGURED,
        "isp.unknow-error": BUSY,
        "aop.unknow-error": BUSY,
    }

    def request(self, config: WxConfig, login: LoginCode, now: float) -> HttpCall:
        """See :class:`AlipayProvider`; ``now`` (epoch seconds) dates the signature."""
        from .._alipay_keys import sign

        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + ALIPAY_UTC_OFFSET))
        params = {
            "app_id": config.appid,
            "method": ALIPAY_METHOD,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": stamp,
            "version": "1.0",
        }
        form = {"grant_type": "authorization_code", "code": login.code}
        params["sign"] = sign(config.secret, alipay_signed_content({**params, **form}))
        return HttpCall("POST", config.api_base_of("alipay") + "/gateway.do", params, None, form)

    def parse(self, config: WxConfig, status: int, body: bytes) -> CodeSession:
        """See :class:`AlipayProvider`."""
        from .._alipay_keys import verify

        data = self.answer(status, body)
        failure = data.get("error_response")
        if failure is None and isinstance(data.get(ALIPAY_ANSWER), dict):
            failure = data[ALIPAY_ANSWER] if "sub_code" in data[ALIPAY_ANSWER] else None
        if failure is not None:
            if not isinstance(failure, dict):
                raise UpstreamError("Alipay answered a malformed error_response.")
            sub_code = str(failure.get("sub_code") or "")[:64]
            code = str(failure.get("code") or "")[:16]
            kind = self.errors.get(sub_code) or (BUSY if code == "20000" else None)
            raise refusal(self.platform, kind, sub_code or code, str(failure.get("sub_msg", "")))
        found = data.get(ALIPAY_ANSWER)
        if not isinstance(found, dict):
            raise UpstreamError(f"Alipay answered without {ALIPAY_ANSWER}.")
        raw = alipay_member(body.decode("utf-8"), ALIPAY_ANSWER)
        signature = data.get("sign")
        if (
            raw is None
            or not isinstance(signature, str)
            or not verify(config.public_key, raw.encode("utf-8"), signature)
        ):
            raise UpstreamError(
                "Alipay's answer did not carry Alipay's signature.",
                detail="the sign of alipay_system_oauth_token_response does not verify with"
                " the configured Alipay public key",
            )
        open_id, user_id = text(found.get("open_id")), text(found.get("user_id"))
        unionid = user_id if open_id else None
        return self.user(open_id or user_id, None, unionid, key_required=False)
