"""``crypto.decrypt_data`` turns every bad plaintext into its documented error (-41003):
nesting deep enough to exhaust the JSON parser, lone surrogates, anything else JSON-shaped
that is not the user's data. Property tests generate them."""

from __future__ import annotations

import base64
import os
from typing import Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wxmiddleware.crypto import IllegalBuffer, WatermarkMismatch, decrypt_data

from .strategies import deep_json, surrogate_text

pytest.importorskip("cryptography")

APPID = "wx4f4bc4dec97d474b"
KEY = base64.b64encode(b"k" * 16).decode()


def encrypt(plain: bytes, key: str = KEY) -> Tuple[str, str]:
    """``(encryptedData, iv)`` of ``plain`` as WeChat makes them: AES-128-CBC, PKCS#7."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.padding import PKCS7

    iv = os.urandom(16)
    padder = PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(base64.b64decode(key)), modes.CBC(iv)).encryptor()
    data = encryptor.update(padded) + encryptor.finalize()
    return base64.b64encode(data).decode(), base64.b64encode(iv).decode()


def watermarked(fields: bytes) -> bytes:
    return b'{"watermark": {"appid": "' + APPID.encode() + b'"}, ' + fields + b"}"


@pytest.mark.parametrize(
    "plain",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        watermarked(b'"nickName": ' + b"[" * 3000 + b"]" * 3000),
        watermarked(b'"nickName": "\\ud800"'),
        watermarked(b'"\\udfff": "x"'),
        watermarked(b'"city": ["ok", {"deeper": "ab\\udc80cd"}]'),
    ],
    ids=["deep-arrays", "deep-objects", "deep-field", "surrogate-value", "surrogate-key", "nested"],
)
def test_bad_plaintext_is_illegal_buffer(plain: bytes) -> None:
    data, iv = encrypt(plain)
    with pytest.raises(IllegalBuffer) as info:
        decrypt_data(KEY, data, iv, APPID)
    assert info.value.errcode == -41003 and info.value.status == 400
    assert type(info.value) is IllegalBuffer


def test_a_surrogate_pair_is_text_and_decrypts() -> None:
    """An escaped pair (``"\\ud83d\\ude00"``) is one character: the payload is good."""
    data, iv = encrypt(watermarked(b'"nickName": "\\ud83d\\ude00", "n": [[[[1]]]]'))
    assert decrypt_data(KEY, data, iv, APPID)["nickName"] == "\U0001f600"


def test_a_watermark_after_deep_data_is_still_checked() -> None:
    data, iv = encrypt(b'{"watermark": {"appid": "wxother"}, "n": ' + b"[" * 50 + b"]" * 50 + b"}")
    with pytest.raises(WatermarkMismatch):
        decrypt_data(KEY, data, iv, APPID)


@settings(max_examples=60, deadline=None)
@given(
    plain=st.one_of(
        deep_json(), surrogate_text.map(lambda text: text.encode("utf-8", "surrogatepass"))
    )
)
def test_any_such_plaintext_is_a_decrypt_error(plain: bytes) -> None:
    data, iv = encrypt(plain)
    with pytest.raises(IllegalBuffer):
        decrypt_data(KEY, data, iv, APPID)


@settings(max_examples=60, deadline=None)
@given(value=surrogate_text)
def test_escaped_surrogates_in_a_field_are_a_decrypt_error(value: str) -> None:
    import json

    plain = json.dumps({"nickName": value, "watermark": {"appid": APPID}}).encode()
    data, iv = encrypt(plain)
    with pytest.raises(IllegalBuffer):
        decrypt_data(KEY, data, iv, APPID)
