"""Open-data decryption and signatures against WeChat's official sample vectors."""

from __future__ import annotations

import base64
import json
from typing import Type

import pytest

from wxmiddleware.crypto import (
    DecryptError,
    IllegalAesKey,
    IllegalBuffer,
    IllegalIv,
    InvalidBase64,
    WatermarkMismatch,
    decrypt_data,
    session_signature,
    verify_signature,
)
from wxmiddleware.session import WxSession

pytest.importorskip("cryptography")

# WeChat's decryption sample (WXBizDataCrypt demo), as quoted by public SDKs' tests.
APPID = "wx4f4bc4dec97d474b"
SESSION_KEY = "tiihtNczf5v6AKRyjwEUhQ=="
IV = "r7BXXKkLb8qrSNn05n0qiA=="
ENCRYPTED_DATA = (
    "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC"
    "+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poO"
    "FtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8"
    "xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB"
    "6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJd"
    "NiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOy"
    "uxINew=="
)
# WeChat's signature sample.
SIGNED_KEY = "HyVFkGl5F5OQWJZZaNzBBg=="
RAW_DATA = json.dumps(
    {
        "nickName": "Band",
        "gender": 1,
        "language": "zh_CN",
        "city": "Guangzhou",
        "province": "Guangdong",
        "country": "CN",
        "avatarUrl": "http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503"
        "Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0",
    },
    separators=(",", ":"),
    ensure_ascii=False,
)
SIGNATURE = "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
OTHER_16_BYTES = base64.b64encode(b"x" * 16).decode()


def test_official_vector_decrypts() -> None:
    data = decrypt_data(SESSION_KEY, ENCRYPTED_DATA, IV, APPID)
    assert data["openId"] == "oGZUI0egBJY1zhBYw2KhdUfwVJJE"
    assert data["nickName"] == "Band"
    assert data["unionId"] == "ocMvos6NjeKLIBqg5Mr9QjxrP1FA"
    assert data["watermark"] == {"timestamp": 1477314187, "appid": APPID}


def test_decrypt_takes_a_session() -> None:
    session = WxSession("o", SESSION_KEY, None, 0.0, 1.0)
    assert decrypt_data(session, ENCRYPTED_DATA, IV, APPID)["nickName"] == "Band"


@pytest.mark.parametrize(
    ("key", "data", "iv", "appid", "error", "errcode"),
    [
        (SESSION_KEY, ENCRYPTED_DATA, IV, "wxsomeoneelse", WatermarkMismatch, -41003),
        (SESSION_KEY, ENCRYPTED_DATA, OTHER_16_BYTES, APPID, IllegalBuffer, -41003),
        (OTHER_16_BYTES, ENCRYPTED_DATA, IV, APPID, IllegalBuffer, -41003),
        ("c2hvcnQ=", ENCRYPTED_DATA, IV, APPID, IllegalAesKey, -41001),
        ("not base64!", ENCRYPTED_DATA, IV, APPID, IllegalAesKey, -41001),
        (SESSION_KEY, ENCRYPTED_DATA, "c2hvcnQ=", APPID, IllegalIv, -41002),
        (SESSION_KEY, ENCRYPTED_DATA, "%%%", APPID, IllegalIv, -41002),
        (SESSION_KEY, "not*base64", IV, APPID, InvalidBase64, -41004),
        (SESSION_KEY, "", IV, APPID, IllegalBuffer, -41003),
        (SESSION_KEY, base64.b64encode(b"x" * 15).decode(), IV, APPID, IllegalBuffer, -41003),
    ],
)
def test_each_failure_has_its_own_error(
    key: str, data: str, iv: str, appid: str, error: Type[DecryptError], errcode: int
) -> None:
    with pytest.raises(error) as info:
        decrypt_data(key, data, iv, appid)
    assert type(info.value) is error
    assert info.value.errcode == errcode and info.value.status == 400
    message = str(info.value)
    assert key not in message
    assert not data or data[:20] not in message


def test_signature_vector() -> None:
    assert verify_signature(SIGNED_KEY, RAW_DATA, SIGNATURE)
    assert verify_signature(SIGNED_KEY, RAW_DATA, SIGNATURE.upper())
    assert not verify_signature(SIGNED_KEY, RAW_DATA + " ", SIGNATURE)
    assert not verify_signature(SESSION_KEY, RAW_DATA, SIGNATURE)
    assert not verify_signature(SIGNED_KEY, RAW_DATA, "")


def test_session_signature_is_hmac_sha256_of_empty_message() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SESSION_KEY.encode(), b"", hashlib.sha256).hexdigest()
    assert session_signature(SESSION_KEY) == expected
    assert session_signature(WxSession("o", SESSION_KEY, None, 0.0, 1.0)) == expected
