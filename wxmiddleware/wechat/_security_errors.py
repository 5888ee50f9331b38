"""The errors of WeChat's server-API security (:mod:`._security`): WeChat's errcodes of the
mode (the guide's 五、错误码, 40230 to 40240) and the ``502`` each failure becomes, whether WeChat
refused a sealed call or its answer failed a check here.
"""

from __future__ import annotations

from typing import Dict, Tuple

from ..errors import UpstreamError

#: WeChat's errcodes of the security mode (the guide's 五、错误码): name and what to check.
SECURITY_ERRCODES: Dict[int, Tuple[str, str]] = {
    40230: (
        "API_Missing_Wechatmp_Serial",
        "the request carried no Wechatmp-Serial: is API security configured here (WX_API_*)"
        " as in the admin console?",
    ),
    40231: (
        "API_Missing_Wechatmp_Timestamp",
        "the request carried no Wechatmp-TimeStamp: is API security configured here"
        " (WX_API_*) as in the admin console?",
    ),
    40232: (
        "API_Missing_Wechatmp_Signature",
        "the request was not signed: API security is on in the admin console; configure"
        " WX_API_SYM_KEY, WX_API_APP_KEY and the platform certificate",
    ),
    40233: (
        "API_Missing_Wechatmp_Appid",
        "the request carried no Wechatmp-Appid: is API security configured here (WX_API_*)"
        " as in the admin console?",
    ),
    40234: (
        "API_Invalid_Signature",
        "WeChat could not verify the request's signature: check that WX_API_APP_KEY is the"
        " private key whose public key the admin console holds (and WX_API_APP_SN its number)",
    ),
    40235: (
        "API_Invalid_Encrypt",
        "WeChat could not decrypt the request: check WX_API_SYM_KEY and WX_API_SYM_SN against"
        " the admin console's API对称密钥",
    ),
    40236: ("API_Invalid_Wechatmp_Appid", "Wechatmp-Appid is not a valid appid"),
    40237: (
        "API_Invalid_Wechatmp_Appidmatch",
        "Wechatmp-Appid does not match the access token's app",
    ),
    40238: (
        "API_NoExist_DevSecretSym",
        "the admin console has no symmetric key (API对称密钥) for this app",
    ),
    40239: (
        "API_NoExist_DevSecretAsym",
        "the admin console has no app public key (API非对称密钥) for this app",
    ),
    40240: (
        "API_Expired_Wechatmp_Timestamp",
        "WeChat found the request's timestamp too old: check this server's clock",
    ),
}


class ApiSecurityError(UpstreamError):
    """WeChat's API security failed: WeChat refused our sealed call (errcodes 40230-40240)
    or its answer failed a check (signature, certificate number, timestamp, appid,
    decryption). A ``502``; ``detail`` names the cause for the log, never a key."""

    default_message = "WeChat's API security check failed."


def security_refusal(errcode: int) -> ApiSecurityError:
    """The error for WeChat's security errcode ``errcode`` (a key of
    :data:`SECURITY_ERRCODES`): a ``502`` whose detail names the errcode and the cause."""
    name, cause = SECURITY_ERRCODES[errcode]
    return ApiSecurityError(
        f"WeChat refused the call's API security (errcode {errcode}).",
        errcode=errcode,
        detail=f"errcode {errcode} {name}: {cause}",
    )


def answer_failure(cause: str) -> ApiSecurityError:
    """The error for an answer that failed the check ``cause`` describes (a ``502``)."""
    return ApiSecurityError("WeChat's answer failed the API security check.", detail=cause)
