"""Each platform's code exchange, as the other platforms' fake (:mod:`.platforms`) answers
it: the request checked as that platform checks it, the code spent, the answer in that
platform's format.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Dict
from urllib.parse import parse_qsl

from ._platforms_base import PlatformState
from ._replies import WeChatError, json_bytes
from ._requests import RecordedCall, json_object


class PlatformExchanges(PlatformState):
    """The exchanges of QQ, Douyin, Baidu, Kuaishou and Alipay (see
    :class:`~.platforms.FakePlatforms` for their endpoints and errors); each takes the
    call and ``now`` and returns the answer's body, or raises the platform's refusal."""

    def _qq(self, call: RecordedCall, now: float) -> bytes:
        query = dict(call.query)
        app = self._app("qq", query.get("appid"))
        if app is None:
            raise self._refuse("qq", 40013, "invalid appid")
        if query.get("secret") != app.secret:
            raise self._refuse("qq", 40125, "invalid appsecret")
        if query.get("grant_type") != "authorization_code":
            raise self._refuse("qq", 40002, "invalid grant_type")
        appid = query["appid"]
        return json_bytes(
            self._user(self._log_in("qq", appid, query.get("js_code"), now, 40029), appid)
        )

    def _douyin(self, call: RecordedCall, now: float) -> bytes:
        body = json_object(call.body) or {}
        appid = body.get("appid")
        app = self._app("douyin", appid if isinstance(appid, str) else None)
        if app is None:
            raise self._refuse("douyin", 40015, "bad appid")
        if body.get("secret") != app.secret:
            raise self._refuse("douyin", 40017, "bad secret")
        code, anonymous = body.get("code"), body.get("anonymous_code")
        if not code and not anonymous:
            raise self._refuse("douyin", 40014, "bad params")
        assert isinstance(appid, str)
        data: Dict[str, str] = {"anonymous_openid": "", "unionid": ""}
        if anonymous:
            with self._lock:
                try:
                    anonymous_user = self._anonymous.claim(
                        anonymous, now, 1 << 30, self.RATE_WINDOW, appid
                    )
                except WeChatError:
                    raise self._refuse("douyin", 40019, "bad anonymous_code") from None
            data["anonymous_openid"] = self.anonymous_openid_for(anonymous_user, appid)
        if code:
            data.update(self._user(self._log_in("douyin", appid, code, now, 40018), appid))
        return json_bytes({"err_no": 0, "err_tips": "success", "data": data})

    def _baidu(self, call: RecordedCall, now: float) -> bytes:
        form = dict(parse_qsl(call.body.decode("utf-8", "replace")))
        app = self._app("baidu", form.get("client_id"))
        if app is None or form.get("sk") != app.secret:
            raise self._refuse("baidu", "invalid_client", "unknown client id")
        appid = form["client_id"]
        user = self._log_in("baidu", appid, form.get("code"), now, "invalid_grant")
        found = self._user(user, appid)
        return json_bytes({"openid": found["openid"], "session_key": found["session_key"]})

    def _kuaishou(self, call: RecordedCall, now: float) -> bytes:
        form = dict(parse_qsl(call.body.decode("utf-8", "replace")))
        if not all(form.get(name) for name in ("app_id", "app_secret", "js_code")):
            raise self._refuse("kuaishou", 100, "参数不完整")
        app = self._app("kuaishou", form.get("app_id"))
        if app is None or form.get("app_secret") != app.secret:
            raise self._refuse("kuaishou", 240002, "app_secret非法")
        appid = form["app_id"]
        found = self._user(self._log_in("kuaishou", appid, form["js_code"], now, 240001), appid)
        answer: Dict[str, Any] = {
            "result": 1,
            "session_key": found["session_key"],
            "open_id": found["openid"],
        }
        if "unionid" in found:
            answer["union_id"] = found["unionid"]
        return json_bytes(answer)

    def _alipay(self, call: RecordedCall, now: float) -> bytes:
        from .._alipay_keys import verify
        from ..core._providers_alipay import ALIPAY_ANSWER, ALIPAY_METHOD, alipay_signed_content

        params = dict(call.query)
        params.update(parse_qsl(call.body.decode("utf-8", "replace")))
        for name in ("app_id", "method", "sign", "sign_type", "timestamp", "version", "code"):
            if not params.get(name):
                raise self._refuse("alipay", f"isv.missing-{name.replace('_', '-')}", "missing")
        app = self._app("alipay", params["app_id"])
        if app is None:
            raise self._refuse("alipay", "isv.invalid-app-id", "无效的AppID参数")
        signed = alipay_signed_content(params)
        if params["sign_type"] != "RSA2" or not verify(app.public_key, signed, params["sign"]):
            raise self._refuse("alipay", "isv.invalid-signature", "验签出错")
        if params["method"] != ALIPAY_METHOD or params.get("grant_type") != "authorization_code":
            raise self._refuse("alipay", "isv.invalid-parameter", "参数无效")
        appid = params["app_id"]
        user = self._log_in("alipay", appid, params["code"], now, "isv.code-invalid")
        answer = {
            "user_id": self.unionid_for(user, appid),
            "open_id": self.openid_for(user, appid),
            "access_token": "authusrB" + secrets.token_hex(16),
            "expires_in": 1296000,
            "refresh_token": "authusrB" + secrets.token_hex(16),
            "re_expires_in": 2592000,
            "auth_start": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        return self._alipay_signed(ALIPAY_ANSWER, answer)
