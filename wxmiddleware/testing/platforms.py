"""The other mini-program platforms' login APIs, as the fake serves them: QQ, Douyin, Baidu,
Kuaishou and Alipay, each in its own answer format with its own error codes.

:class:`FakePlatforms` is pure state and answers (no sockets); :class:`FakeWeChat
<wxmiddleware.testing.FakeWeChat>` holds one as ``fake.platforms`` and serves each platform
under a path prefix of its own URL (``/qq``, ``/douyin``, ``/baidu``, ``/kuaishou``,
``/alipay``), so that :func:`api_bases` points a configuration at it::

    fake.platforms.add_app("douyin", "tt0123456789abcdef", "tt-secret")
    config = WxConfig(apps=["douyin:tt0123456789abcdef:tt-secret"], **api_bases(fake.url))
    code = fake.platforms.issue_code("tt0123456789abcdef", "alice")

Endpoints (the paths the providers of :mod:`wxmiddleware.core._providers` call):

- QQ ``GET /qq/sns/jscode2session`` (``appid``, ``secret``, ``js_code``, ``grant_type``):
  ``{"openid", "session_key", "unionid"}`` or ``{"errcode", "errmsg"}``: 40013 unknown
  appid, 40125 wrong secret, 40029 a code that is unknown, expired, used or another app's,
  45011 more than 100 logins of a user in a minute.
- Douyin ``POST /douyin/api/apps/v2/jscode2session`` (JSON ``appid``, ``secret``, ``code``,
  ``anonymous_code``): ``{"err_no": 0, "err_tips": "success", "data": {…}}`` or a non-zero
  ``err_no``: 40014 no code, 40015 appid, 40017 secret, 40018 code, 40019 anonymous_code.
- Baidu ``POST /baidu/oauth/jscode2sessionkey`` (form ``code``, ``client_id``, ``sk``):
  ``{"openid", "session_key"}`` or ``{"error", "error_description"}``: ``invalid_client``
  (unknown App Key or wrong secret), ``invalid_grant`` (the code).
- Kuaishou ``POST /kuaishou/oauth2/mp/code2session`` (form ``app_id``, ``app_secret``,
  ``js_code``): ``{"result": 1, "session_key", "open_id"}`` or ``{"result", "error_msg"}``:
  100 a parameter missing, 240002 app_id or app_secret, 240001 the code.
- Alipay ``POST /alipay/gateway.do`` (common parameters in the query, ``grant_type`` and
  ``code`` in the form): checks the RSA2 signature with the app's public key, answers
  ``alipay_system_oauth_token_response`` (``user_id``, ``open_id``, ``access_token`` …)
  signed with the fake Alipay's private key, or ``error_response``: 40002
  ``isv.invalid-app-id``, ``isv.invalid-signature``, ``isv.code-invalid``; 40001
  ``isv.missing-…`` for a missing parameter.

Faults (:meth:`FakePlatforms.inject`) replace the next answers of one platform. Every
method may be called from any thread; times are ``time.monotonic()`` seconds.

The fake's state and each platform's refusal are :mod:`._platforms_base`'s, each platform's
exchange :mod:`._platforms_exchanges`'s; this module routes calls and injects faults.
"""

from __future__ import annotations

import collections
from typing import Any, Dict, List, Optional

from .._apps import PLATFORM_INFO
from ._platforms_base import PLATFORM_PATHS, PlatformFault, Refusal
from ._platforms_exchanges import PlatformExchanges
from ._replies import JSON, Reply
from ._requests import RecordedCall

__all__ = ["PLATFORM_PATHS", "FakePlatforms", "api_base_env", "api_bases"]

#: Faults :meth:`FakePlatforms.inject` takes.
FAULTS = ("error", "html", "http_status", "invalid_json", "wrong_shape", "close")


def api_bases(url: str) -> Dict[str, str]:
    """The ``WxConfig`` fields that point every other platform at the fake at ``url``
    (``{"api_base_qq": url + "/qq", …}``)."""
    return {f"api_base_{name}": f"{url}/{name}" for name in PLATFORM_PATHS}


def api_base_env(url: str) -> Dict[str, str]:
    """The environment variables that do what :func:`api_bases` does
    (``{"WX_API_BASE_QQ": url + "/qq", …}``)."""
    return {PLATFORM_INFO[name].api_base_variable: f"{url}/{name}" for name in PLATFORM_PATHS}


class FakePlatforms(PlatformExchanges):
    """QQ's, Douyin's, Baidu's, Kuaishou's and Alipay's login APIs (see the module docstring).

    ``session_key_factory`` makes each login's session key (``() -> str``); ``unionid``
    says whether answers carry a unionid (a user's is the same in every app of a
    platform). Codes are issued per app (:meth:`issue_code`) and work only there: a code of
    one app sent to another answers that platform's invalid-code error.
    """

    # -- faults, call log ------------------------------------------------------------------

    def inject(self, platform: str, fault: str, count: int = 1, **params: Any) -> None:
        """Queue ``count`` copies of a fault for ``platform``'s next exchanges (the code is
        not spent): ``"error"`` (``code``: the platform's error code or word, Alipay's
        ``sub_code``; optional ``message``) answers that refusal in the platform's format;
        ``"html"`` an HTML page (HTTP 200); ``"http_status"`` (``status=502``) that status
        with an HTML page; ``"invalid_json"``; ``"wrong_shape"`` JSON of another shape
        (``[]``); ``"close"`` drops the connection. ``ValueError`` for an unknown one."""
        if platform not in PLATFORM_PATHS or fault not in FAULTS or count < 1:
            raise ValueError(f"unknown platform or fault: {platform!r}, {fault!r}")
        if fault == "error" and "code" not in params:
            raise ValueError("an error fault needs its code")
        with self._lock:
            queue = self._faults.setdefault(platform, collections.deque())
            queue.extend([PlatformFault(fault, dict(params))] * count)

    def calls_to(self, platform: str) -> int:
        """How many exchange requests reached ``platform``."""
        with self._lock:
            return sum(call.path.startswith(f"/{platform}/") for call in self._calls)

    @property
    def calls(self) -> List[RecordedCall]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    def reset(self) -> None:
        """Forget queued faults, the call log and rate counters."""
        with self._lock:
            self._faults.clear()
            self._calls.clear()
            self._codes.forget_quotas()

    # -- answering -------------------------------------------------------------------------

    @staticmethod
    def serves(path: str) -> bool:
        """Whether ``path`` is under a platform's prefix (the server hands it here)."""
        return path.split("/", 2)[1] in PLATFORM_PATHS if path.count("/") >= 2 else False

    def answer(self, call: RecordedCall, now: float) -> Optional[Reply]:
        """The answer to ``call`` at ``now``; ``None`` drops the connection."""
        platform = call.path.split("/", 2)[1]
        method, path = PLATFORM_PATHS[platform]
        with self._lock:
            self._calls.append(call)
            queue = self._faults.get(platform)
            fault = queue.popleft() if queue else None
        if call.path != f"/{platform}{path}":
            return Reply(404, "text/html", b"<html><body>404 Not Found</body></html>")
        if call.method != method:
            return Reply(405, "text/html", b"<html><body>405 Not Allowed</body></html>")
        if fault is not None:
            return self._fault_reply(platform, fault)
        try:
            body = getattr(self, f"_{platform}")(call, now)
        except Refusal as refusal:
            body = refusal.body
        return Reply(200, "application/json; charset=utf-8", body)

    def _fault_reply(self, platform: str, fault: PlatformFault) -> Optional[Reply]:
        if fault.kind == "close":
            return None
        if fault.kind == "error":
            code = fault.params["code"]
            return Reply(200, JSON, self._error_body(platform, code, fault.params.get("message")))
        if fault.kind == "invalid_json":
            return Reply(200, JSON, b'{"openid": "o')
        if fault.kind == "wrong_shape":
            return Reply(200, JSON, b"[]")
        status = int(fault.params.get("status", 502)) if fault.kind == "http_status" else 200
        page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
        return Reply(status, "text/html", page)
