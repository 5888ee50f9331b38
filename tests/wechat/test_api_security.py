"""WeChat's server-API security (服务端API安全鉴权): sealed calls, verified answers.

The official test vectors are the worked example of WeChat's guide "服务端 API 签名加密指南"
(developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/getting_started/api_signature.html;
now also at developers.weixin.qq.com/miniprogram/dev/server/getting_started/api_signature.html):
getuserriskrank's symmetric key and its number, the request plaintext, iv, ciphertext and
authtag (3.1.2), the app's RSA private key and the request's signature (3.2.2), the platform
certificate, the answer's signature and ciphertext (4.1.2) and the answer's plaintext
(4.2.1). They were read from a Markdown transcription of that page in a public repository
and agree with the values other implementations' tests quote from it (a Go test of
cryptobin, go-sphere/weixin-api, SKIT.FlurlHttpClient.Wechat); that the certificate verifies
the signature and the key reproduces the ciphertext byte for byte is itself the proof that
they were copied right. The rest runs against the fake WeChat over real sockets, sync and
async.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from wxmiddleware import AsyncWxApi, MemoryStore, WxApi, WxConfig, WxSession
from wxmiddleware.errors import ConfigError, InvalidCode, UpstreamError
from wxmiddleware.stores.aio import AsyncMemoryStore
from wxmiddleware.testing import FakeWeChat
from wxmiddleware.testing._security import FakeApiSecurity
from wxmiddleware.wechat import ApiRequest, WeChatClient, parse_reply
from wxmiddleware.wechat._api_replies import api_error
from wxmiddleware.wechat._paths import PHONE_NUMBER_PATH, USER_ENCRYPT_KEY_PATH
from wxmiddleware.wechat._security import (
    ApiSecurity,
    ApiSecurityError,
    Sealed,
    decrypt,
    string_to_sign,
    verify,
)
from wxmiddleware.wechat._security_keys import load_api_security
from wxmiddleware.wechat._server_api import sealed_exchange

# --- the guide's worked example (getuserriskrank) ---

URL = "https://api.weixin.qq.com/wxa/getuserriskrank"
APPID = "wxba6223c06417af7b"
SYM_SN = "fa05fe1e5bcc79b81ad5ad4b58acf787"
SYM_KEY = "otUpngOjU+nVQaWJIC3D/yMLV17RKaP6t4Ot9tbnzLY="
APP_SN = "97845f6ed842ea860df6fdf65941ff56"
APP_KEY = """-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEA3FoQOmOl5/CF5hF7ta4EzCy2LaU3Eu2k9DBwQ73J82I53Sx9
LAgM1DH3IsYohRRx/BESfbdDI2powvr6QYKVIC+4Yavwg7gzhZRxWWmT1HruEADC
ZAgkUCu+9Il/9FPuitPSoIpBd07NqdkkRe82NBOfrKTdhge/5zd457fl7J81Q5VT
IxO8vvq7FSw7k6Jtv+eOjR6SZOWbbUO7f9r4UuUkXmvdGv21qiqtaO1EMw4tUCEL
zY73M7NpCH3RorlommYX3P6q0VrkDHrCE0/QMhmHsF+46E+IRcJ3wtEj3p/mO1Vo
CpEhawC1U728ZUTwWNEii8hPEhcNAZTKaQMaTQIDAQABAoIBAQCXv5p/a5KcyYKc
75tfgekh5wTLKIVmDqzT0evuauyCJTouO+4z/ZNAKuzEUO0kwPDCo8s1MpkU8boV
1Ru1M8WZNePnt65aN+ebbaAl8FRzNvltoeg9VXIUmBvYcjzhOVAE4V2jW7M8A9QU
zUpyswuED6OeFKfOHtYk2In2IipAqhfbyc6gn7uZSWTQsoO6hGBRQ7Ejx+vgwrbx
ZKVZ7UXbPHD0lOEPraA3PH/QUeUKpNwK2NXQoBxWcR283/HxFSAjjSSsGSBKsCnw
DN55P2FQ0HNi5YrwUNT9190NIXSeygaRy1b+D+yBfm+yE7/qXwHLZCHsjO+2tMSS
3KGjllTBAoGBAP9FPeYNKZuu5jt9RpZwXCc9E7Iz7bmM7zws6dun6dQH0xVVWFVm
iGIu07eqyB8HNagXseFzoXLV5EQx+3DaB0bAH+ZEpHGJJpAWSLusigssFUFuTvTF
w+rC5hxOfidMa6+93SU5pWeJb0zJF8PRDaJ3UmwlwpYubF17sT4PD6p9AoGBANz7
RlhRSFvggJjhEMpek3OIYWrrlRNO2MVcP7i/fGNTHhrw7OHcNGRof54QZ2Y0baL7
1vHNokbK2mnT+cQXY/gXMmcE/eV4xyRGYiIL9nBdrkLerc43EYPv+evDvgyji6+y
4np5cKqHrS8F+YzATk82Jt9HgdI2MvfbJTkSbmgRAoGAHNPL9rPb1An/VA6Ery6H
KaM7Gy/EE+U3ixsjWbvvqxMrIkieDh7jHftdy2sM6Hwe8hmi6+vr+pTvD0h5tbfZ
hILj11Q/Idc0NKdflVoZyMM0r0vuvLOsuVFDPUUb+AIoUxNk6vREmpmpqQk4ltN/
763779yfyef6MuBqFrEKut0CgYB9FfsuuOv1nfINF7EybDCZAETsiee7ozEPHnWv
dSzK6FytMV1VSBmcEI7UgUKWVu0MifOUsiq+WcsihmvmNLtQzoioSeoSP7ix7ulT
jmP0HQMsNPI7PW67uVZFv2pPqy/Bx8dtPlqpHN3KNV6Z7q0lJ2j/kHGK9UUKidDb
KnS2kQKBgHZ0cYzwh9YnmfXx9mimF57aQQ8aFc9yaeD5/3G2+a/FZcHtYzUdHQ7P
PS35blD17/NnhunHhuqakbgarH/LIFMHITCVuGQT4xS34kFVjFVhiT3cHfWyBbJ6
GbQuzzFxz/UKDDKf3/ON41k8UP20Gdvmv/+c6qQjKPayME81elus
-----END RSA PRIVATE KEY-----"""
PLATFORM_SN = "79ba700ea147819f640941bceb38b1d1"
PLATFORM_CERT = """-----BEGIN CERTIFICATE-----
MIID0jCCArqgAwIBAgIUeE+Yy7vM/o+eHHsfM+1bGJJEZTQwDQYJKoZIhvcNAQEL
BQAwXjELMAkGA1UEBhMCQ04xEzARBgNVBAoTClRlbnBheS5jb20xHTAbBgNVBAsT
FFRlbnBheS5jb20gQ0EgQ2VudGVyMRswGQYDVQQDExJUZW5wYXkuY29tIFJvb3Qg
Q0EwHhcNMjIwOTA1MDgzOTIyWhcNMjcwOTA0MDgzOTIyWjBkMRswGQYDVQQDDBJ3
eGQ5MzBlYTVkNWEyNThmNGYxFTATBgNVBAoMDFRlbmNlbnQgSW5jLjEOMAwGA1UE
CwwFV3hnTXAxCzAJBgNVBAYMAkNOMREwDwYDVQQHDAhTaGVuWmhlbjCCASIwDQYJ
KoZIhvcNAQEBBQADggEPADCCAQoCggEBAM5D9qlkCmk1kr3FpF0e9pc3kGsvz5RA
0/YRny9xPKIyV2UVMDZvRQ+mDHsiQQFE6etg457KFYSxTDKtItbdl6hJQVGeAvg0
mqPYE9SkHRGTfL/AnXRbKBG2GC2OcaPSAprsLOersjay2me+9pF8VHybV8aox78A
NsU75G/OO3V1iEE0s5Pmglqk8DEiw9gB/dGJzsNfXwzvyJyiUP9ZujYexyjsS+/Z
GdSOUkqL/th+16yHj8alcdyga6YGfWEDyWkt/i/B28cwx4nzwk8xgrurifPaLuMk
0+9wJQLCfAn/f7zyHrC8PcD1XvvRt9VBNMBASXs3710ODyyVf2lkMgkCAwEAAaOB
gTB/MAkGA1UdEwQCMAAwCwYDVR0PBAQDAgTwMGUGA1UdHwReMFwwWqBYoFaGVGh0
dHA6Ly9ldmNhLml0cnVzLmNvbS5jbi9wdWJsaWMvaXRydXNjcmw/Q0E9MUJENDIy
MEU1MERCQzA0QjA2QUQzOTc1NDk4NDZDMDFDM0U4RUJEMjANBgkqhkiG9w0BAQsF
AAOCAQEAL2MK9tYu+ljLVBlSbfEeaKyF07TN+G31Ya5NBzeS1ZCx4joUEIyACWmG
fUkKNKiKV+EMzxeEhKRso1Qif3E7Ipl+PQBoQw6OSR/jFHciYurnGR9CLkL03Zo1
qw1Xetv9OipsvlpA0SOWc207e/XpGdm8C7FMXM6bzvVp8I/STTjC1vqjIZu9WavI
RgGM4jyAPz2XogUq0BNijef8BXbbav9fAsXjHSwn5BQv4iLms3fiLm/eoyQ6dZ2R
oTudrlcyr1bG4vwETLmHF+3yfVp9dpvJ+lyfiviwDwyfa8t2WlJm27DuF4vWoxir
mjgj9tDutIFqxLIovLyg3uiAYtSQ/Q==
-----END CERTIFICATE-----"""

REQUEST_FIELDS = {
    "appid": APPID,
    "openid": "oEWzBfmdLqhFS2mTXCo2E4Y9gJAM",
    "scene": 0,
    "client_ip": "127.0.0.1",
}
REQUEST_TIMESTAMP = 1635927954
REQUEST_NONCE = "o89QaPVsRu1yppIZzvSZc4"
REQUEST_IV = "fmW/zNxXlytUZBgj"
REQUEST_PLAINTEXT = (
    b'{"_n":"o89QaPVsRu1yppIZzvSZc4","_appid":"wxba6223c06417af7b","_timestamp":1635927954,'
    b'"appid":"wxba6223c06417af7b","openid":"oEWzBfmdLqhFS2mTXCo2E4Y9gJAM","scene":0,'
    b'"client_ip":"127.0.0.1"}'
)
REQUEST_DATA = (
    "0IDVdrPtSPF/Oe2CTXCV2vVNPbVJdJlP2WaTMQnoYLh5iCrrSNfQFh25EnStDMf0hLlVNBCZQtf9NaV0m4aRA4AAYIO7"
    "oR/Ge+4yY4EmZp5EVPB42xjScgMx5X3D4VdLCfynXIUKUtZHZvk1zmLVE3RauzJgiM1BB1CPmwcENo3MTJ0z8Vfkf5tM"
    "v54kOXobDLlV5rfqKdAX7gM/rP82DgZdt9vvZX44ipdbHIjJvw83ZXAFtvftdVw2Qd8="
)
REQUEST_AUTHTAG = "5qeM/2vZv+6KtScN94IpMg=="
#: The request body as sent: "原postdata总长度324, 末尾无回车符".
REQUEST_BODY = (
    f'{{"iv":"{REQUEST_IV}","data":"{REQUEST_DATA}","authtag":"{REQUEST_AUTHTAG}"}}'.encode()
)
REQUEST_SIGNATURE = (
    "wcSSWHZunjz9VKl9q+If9deiyECXDAELfAJNZ4+5T+NhFr8zfhkwdQtlgQ7nN5xs99R57La9UjBTRBGge2KYyshWtw7H"
    "IMPAqWNsnpHvx0b2f7s6Bt7OpfOQLlIfNgepgTVmUwrqW8/7A12szj7tCe/bRFilwnaX6N0w4duHlfL7ic7IIZXouvy9"
    "dLRAa5GtEk1eD/LPWRiKh0SvJ3znPY/pSiQW9zSkXVdj9UGGM8qcKLzPGJ7gSmt3ZOPkFapk9wqFmhJwQj//xN5+hUlr"
    "2UiNPMNSHve5Y2ADLsNHqk5t7RfAZ8nW9/8lzhVt4t+toy1FeehxCGIC8qgmjIl1hg=="
)
ANSWER_TIMESTAMP = 1635927956
#: The answer body as sent: "响应数据总长度292, 末尾无回车符".
ANSWER_BODY = (
    b'{"iv":"r2WDQt56rEAmMuoR","data":"HExs66Ik3el+iM4IpeQ7SMEN934FRLFYOd3EmeaIrpP4EPTHckoco6O+Pa'
    b"oRZRa3lqaPRZT7r52f7LUok6gLxc6cdR8C4vpIIfh4xfLC4L7FNy9GbuMK1hcoi8b7gkWJcwZMkuCFNEDmqn3T49oWzA"
    b'QOrY4LZnnnykv6oUJotdAsnKvmoJkLK7hRh7M2B1d2UnTnRuoIyarXc5Iojwoghx4BOvnV","authtag":"z2BFD8Qct'
    b'KXTuBlhICGOjQ=="}'
)
ANSWER_HEADERS = {
    "wechatmp-appid": APPID,
    "wechatmp-timestamp": str(ANSWER_TIMESTAMP),
    "wechatmp-serial": PLATFORM_SN,
    "wechatmp-signature": (
        "Ht0VfQkkEweJ4hU266C14Aj64H9AXfkwNi5zxUZETCvR2svU1ZYdosDhFX/voLj1TyszqKsVxAlENGt7PPZZ8RQX7jnA"
        "4SKhiPUhW4LTbyTenisHJ+ohSfDjYnXavjQsBHspFS+BlPHuSSJ2xyQzw1+HuC6nid09ZL4FnGSYo4OI5MJrSb9xLzIV"
        "ZMIDuUQchGKi/KaB1KzxECLEZcfjqbAgmxC7qOmuBLyO1WkHYDM95NJrHJWba5xv4wrwPru9yYTJSNRnlM+zrW5w9pOu"
        "bC4Jtj3szTAEuOz9AcqUmgaAvMLNAIa8hfODLRe3n/cu4SgYlN/ZkNRU4QXVNbPGMg=="
    ),
    # The certificate about to expire: its signature is in the guide, the certificate is not.
    "wechatmp-serial-deprecated": "2171af9cdf1d7404423852e7e183d852",
    "wechatmp-signature-deprecated": (
        "ZP1OODikAOePc+YJUMLxunF6xV05kextO/T1fy5lWv/CwV6OCsPBRM2xRRCi+B4lYXbbfYDdjzCz5BIAWEwIdjMlg/I"
        "HcJVHhRNAlKt5A3zvzfaJa5IJQel7xuUEXk/B6KVyEb41PbzrptjUGqWyTFMrjxQ4ThJfCuYocnUng7OuDU95enMqK2h"
        "ZpO8o7kFW638BAwKDSiFNEwEJDWYkLz0kEw7ma3keezm4YHYKfJmjChK39tmZld7Rw/yrV1U9RiL/DO5ayP9VmrQkT/v"
        "YrPKyqI4/xKrIaTq44jFYTPIJKdU2OnLt6kjqwp2hvCzMuJdjRcrvzhWJ2A8xZ5hI2w=="
    ),
}
ANSWER_PLAINTEXT = (
    b'{"_n":"ShYZpqdVgY+yQVAxNSWhYg","_appid":"wxba6223c06417af7b","_timestamp":1635927956,'
    b'"errcode":0,"errmsg":"getuserriskrank succ","risk_rank":0,"unoin_id":2258658297}'
)
#: hex(H0), the SHA-256 of the answer's string to sign.
ANSWER_H0 = "f797cafd9e323df336fb427569fbe67e20d5bc96dd68a3f54d66b54e6e08bb27"


def official() -> Any:
    security = load_api_security(SYM_KEY, SYM_SN, APP_KEY, APP_SN, [PLATFORM_CERT], [PLATFORM_SN])
    assert security is not None
    return security


def test_official_vectors_request_encryption_is_byte_for_byte_the_guides() -> None:
    assert len(REQUEST_BODY) == 324
    sealed = official().seal(
        URL,
        APPID,
        REQUEST_FIELDS,
        REQUEST_TIMESTAMP,
        nonce=REQUEST_NONCE,
        iv=base64.b64decode(REQUEST_IV),
    )
    assert sealed.content == REQUEST_BODY
    plain = decrypt(base64.b64decode(SYM_KEY), SYM_SN, URL, APPID, REQUEST_TIMESTAMP, REQUEST_BODY)
    assert plain == REQUEST_PLAINTEXT
    assert sealed.headers["Wechatmp-Appid"] == APPID
    assert sealed.headers["Wechatmp-TimeStamp"] == str(REQUEST_TIMESTAMP)
    assert sealed.headers["Wechatmp-Serial"] == APP_SN
    # RSA-PSS signatures are randomised: ours differs from the guide's, and both verify with
    # the public half of the guide's private key over the guide's string to sign.
    message = string_to_sign(URL, APPID, REQUEST_TIMESTAMP, REQUEST_BODY)
    public = official().app_key.public_key()
    assert verify(public, message, REQUEST_SIGNATURE)
    assert verify(public, message, sealed.headers["Wechatmp-Signature"])
    assert not verify(public, message + b" ", REQUEST_SIGNATURE)


def test_official_vectors_answer_verifies_and_decrypts_to_the_guides_plaintext() -> None:
    assert len(ANSWER_BODY) == 292
    message = string_to_sign(URL, APPID, ANSWER_TIMESTAMP, ANSWER_BODY)
    assert hashlib.sha256(message).hexdigest() == ANSWER_H0
    security = official()
    assert verify(
        security.platform_keys[PLATFORM_SN], message, ANSWER_HEADERS["wechatmp-signature"]
    )
    raw = decrypt(base64.b64decode(SYM_KEY), SYM_SN, URL, APPID, ANSWER_TIMESTAMP, ANSWER_BODY)
    assert raw == ANSWER_PLAINTEXT
    sealed = Sealed(URL, APPID, REQUEST_TIMESTAMP, REQUEST_BODY, {})
    opened = security.open(sealed, ANSWER_BODY, ANSWER_HEADERS, now=ANSWER_TIMESTAMP + 1)
    assert json.loads(opened) == {
        "errcode": 0,
        "errmsg": "getuserriskrank succ",
        "risk_rank": 0,
        "unoin_id": 2258658297,
    }


@pytest.mark.parametrize(
    "change, cause",
    [
        (
            {"wechatmp-signature": ANSWER_HEADERS["wechatmp-signature-deprecated"]},
            "does not verify",
        ),
        ({"wechatmp-serial": "00000000000000000000000000000000"}, "signed by platform"),
        ({"wechatmp-appid": "wx0000000000000000"}, "Wechatmp-Appid"),
        ({"wechatmp-timestamp": str(ANSWER_TIMESTAMP + 1)}, "does not verify"),
    ],
)
def test_official_answer_altered_fails_closed(change: Dict[str, str], cause: str) -> None:
    sealed = Sealed(URL, APPID, REQUEST_TIMESTAMP, REQUEST_BODY, {})
    with pytest.raises(ApiSecurityError) as caught:
        official().open(sealed, ANSWER_BODY, {**ANSWER_HEADERS, **change}, now=ANSWER_TIMESTAMP)
    assert cause in str(caught.value.detail)
    assert caught.value.status == 502


def test_official_answer_tampered_body_and_stale_time_fail_closed() -> None:
    sealed = Sealed(URL, APPID, REQUEST_TIMESTAMP, REQUEST_BODY, {})
    tampered = ANSWER_BODY.replace(b'"iv":"r2WD', b'"iv":"r2WE')
    with pytest.raises(ApiSecurityError, match="check"):
        official().open(sealed, tampered, ANSWER_HEADERS, now=ANSWER_TIMESTAMP)
    with pytest.raises(ApiSecurityError) as caught:
        official().open(sealed, ANSWER_BODY, ANSWER_HEADERS, now=ANSWER_TIMESTAMP + 301)
    assert "301 s away" in str(caught.value.detail)


# --- configuration ---


def test_api_security_is_off_by_default() -> None:
    assert WxConfig(appid=APPID, secret="s").api_security is None


def test_config_loads_pkcs1_pkcs8_and_paths_and_hides_keys(tmp_path: Path) -> None:
    fake = FakeApiSecurity.generate(APPID)
    env = fake.write_files(str(tmp_path))
    config = WxConfig.from_env({"WX_APPID": APPID, "WX_SECRET": "s", **env})
    security = config.api_security
    assert security is not None
    assert security.platform_sns == (fake.certificates[0].sn,)
    assert config.api_platform_cert == (env["WX_API_PLATFORM_CERT"],)
    pkcs1 = WxConfig(
        appid=APPID,
        secret="s",
        api_sym_key=SYM_KEY,
        api_sym_sn=SYM_SN,
        api_app_key=APP_KEY,
        api_app_sn=APP_SN,
        api_platform_cert=PLATFORM_CERT,
        api_platform_sn=PLATFORM_SN,
    )
    assert pkcs1.api_security is not None
    shown = repr(pkcs1) + repr(pkcs1.api_security) + repr(security) + repr(fake)
    for secret in (SYM_KEY, "MIIEowIBAAKCAQEA3FoQ", fake.sym_key, fake.app_key_pem[40:80]):
        assert secret not in shown


@pytest.mark.parametrize(
    "change, message",
    [
        ({"api_sym_key": "not base64!"}, "WX_API_SYM_KEY .* not base64"),
        ({"api_sym_key": base64.b64encode(b"k" * 16).decode()}, "16 bytes, not the 32"),
        ({"api_app_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, "PEM"),
        ({"api_app_key": "/nonexistent/key.pem"}, "cannot read"),
        (
            {"api_platform_cert": "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----"},
            "not a PEM certificate",
        ),
        ({"api_platform_sn": f"{PLATFORM_SN},other"}, "one number per certificate"),
        ({"api_app_sn": ""}, "missing: WX_API_APP_SN"),
    ],
)
def test_malformed_settings_are_config_errors_at_start_up(
    change: Dict[str, str], message: str
) -> None:
    options = {
        "api_sym_key": SYM_KEY,
        "api_sym_sn": SYM_SN,
        "api_app_key": APP_KEY,
        "api_app_sn": APP_SN,
        "api_platform_cert": PLATFORM_CERT,
        "api_platform_sn": PLATFORM_SN,
        **change,
    }
    with pytest.raises(ConfigError, match=message) as caught:
        WxConfig(appid=APPID, secret="s", **options)
    assert SYM_KEY not in str(caught.value) and "MIIEow" not in str(caught.value)


def test_several_apps_refuse_api_security() -> None:
    fake = FakeApiSecurity.generate(APPID)
    with pytest.raises(ConfigError, match="one mini-program"):
        WxConfig(apps={APPID: "s", "wx1111111111111111": "t"}, **fake.config_options())


def test_security_errcodes_map_to_502_naming_the_cause() -> None:
    for errcode in range(40230, 40241):
        error = api_error(errcode, "whatever")
        assert isinstance(error, ApiSecurityError) and error.status == 502
        assert error.errcode == errcode and f"errcode {errcode}" in str(error.detail)


# --- against the fake WeChat, every covered API, sync and async ---


@pytest.fixture
def secured() -> Iterator[FakeWeChat]:
    with FakeWeChat() as fake:
        fake.enable_api_security()
        yield fake


def config_for(fake: FakeWeChat, **overrides: Any) -> WxConfig:
    assert fake.api_security is not None
    options = {**fake.api_security.config_options(), **overrides}
    return WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url, **options)


def logged_in(fake: FakeWeChat, user: str = "alice") -> WxSession:
    client = WeChatClient(WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url))
    reply = client.code_to_session(fake.issue_code(user))
    client.close()
    now = time.time()
    return WxSession(reply.openid, reply.session_key, reply.unionid, now, now + 86400)


def assert_nothing_in_clear(fake: FakeWeChat, *secrets: str) -> None:
    sealed = [call for call in fake.calls if call.path.startswith("/wxa/")]
    assert sealed
    for call in sealed:
        assert [name for name, _ in call.query] == ["access_token"]
        assert set(json.loads(call.body)) == {"iv", "data", "authtag"}
        assert call.headers["wechatmp-signature"] and call.headers["wechatmp-appid"] == fake.appid
        for secret in secrets:
            assert secret not in call.body.decode()


def test_every_covered_api_sealed_sync(secured: FakeWeChat) -> None:
    session = logged_in(secured)
    api = WxApi(config_for(secured), MemoryStore())
    try:
        phone_code = secured.issue_phone_code("alice", "13800138000")
        assert api.get_phone_number(phone_code)["purePhoneNumber"] == "13800138000"
        keys = api.user_encrypt_keys(session)
        assert keys and keys[0].version == 1
        secured.remember_encrypted_data("ENCRYPTED==", create_time=1700000000)
        check = api.check_encrypted_data("ENCRYPTED==")
        assert check.valid and check.create_time == 1700000000
        assert not api.check_encrypted_data("OTHER==").valid
        assert api.plugin_openpid(secured.issue_plugin_code("alice")) == secured.openpid_for(
            "alice"
        )
        with pytest.raises(InvalidCode):
            api.get_phone_number(phone_code)  # spent: WeChat's sealed 40029
        # the generic path: an ApiRequest of one's own, marked secure
        code = secured.issue_phone_code("bob", "13900139000")
        request = ApiRequest("POST", PHONE_NUMBER_PATH, body={"code": code}, secure=True)
        assert (
            api.tokens.call(request, parse_reply)["phone_info"]["purePhoneNumber"] == "13900139000"
        )
        assert_nothing_in_clear(secured, phone_code, code, "13800138000", session.openid)
    finally:
        api.close()


def test_every_covered_api_sealed_async(secured: FakeWeChat) -> None:
    session = logged_in(secured)

    async def main() -> None:
        api = AsyncWxApi(config_for(secured), AsyncMemoryStore())
        try:
            phone_code = secured.issue_phone_code("alice", "13800138000")
            info = await api.get_phone_number(phone_code)
            assert info["purePhoneNumber"] == "13800138000"
            assert (await api.user_encrypt_keys(session))[0].version == 1
            secured.remember_encrypted_data("ENCRYPTED==")
            assert (await api.check_encrypted_data("ENCRYPTED==")).valid
            code = secured.issue_plugin_code("alice")
            assert await api.plugin_openpid(code) == secured.openpid_for("alice")
            request = ApiRequest(
                "POST", PHONE_NUMBER_PATH, body={"code": secured.issue_phone_code()}, secure=True
            )
            assert "phone_info" in await api.tokens.call(request, parse_reply)
        finally:
            await api.aclose()

    asyncio.run(main())
    assert_nothing_in_clear(secured, session.openid)


# --- failures, each closed, logged without keys ---


def run_both(config: WxConfig, fake: FakeWeChat) -> Iterator[BaseException]:
    """Make a phone number call through WxApi and AsyncWxApi; yield each one's error."""
    api = WxApi(config, MemoryStore())
    try:
        with pytest.raises(UpstreamError) as caught:
            api.get_phone_number(fake.issue_phone_code())
        yield caught.value
    finally:
        api.close()

    async def main() -> BaseException:
        async_api = AsyncWxApi(config, AsyncMemoryStore())
        try:
            with pytest.raises(UpstreamError) as caught:
                await async_api.get_phone_number(fake.issue_phone_code())
            return caught.value
        finally:
            await async_api.aclose()

    yield asyncio.run(main())


def assert_logged_without_keys(
    caplog: pytest.LogCaptureFixture, fake: FakeWeChat, cause: str
) -> None:
    lines = [record.getMessage() for record in caplog.records if record.name == "wxmiddleware"]
    assert any("API security" in line and cause in line for line in lines), lines
    text = "\n".join(lines)
    security = fake.api_security
    assert security is not None
    assert security.sym_key not in text and security.app_key_pem[40:80] not in text


@pytest.mark.parametrize(
    "knob, value, cause",
    [
        ("tamper_answers", True, "does not verify"),
        ("answer_serial", "0123456789abcdef0123456789abcdef", "signed by platform"),
        ("answer_clock_offset", -600.0, "away from this server's clock"),
    ],
)
def test_bad_answers_fail_closed(
    secured: FakeWeChat, caplog: pytest.LogCaptureFixture, knob: str, value: Any, cause: str
) -> None:
    caplog.set_level(logging.INFO, logger="wxmiddleware")
    config = config_for(secured)
    setattr(secured.api_security, knob, value)
    for error in run_both(config, secured):
        assert isinstance(error, ApiSecurityError) and error.status == 502
        assert cause in str(error.detail)
    assert_logged_without_keys(caplog, secured, cause)


def test_wrong_symmetric_key_is_wechats_40235(
    secured: FakeWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wxmiddleware")
    wrong = base64.b64encode(b"w" * 32).decode()
    for error in run_both(config_for(secured, api_sym_key=wrong), secured):
        assert isinstance(error, ApiSecurityError) and error.errcode == 40235
    assert_logged_without_keys(caplog, secured, "API_Invalid_Encrypt")
    assert wrong not in caplog.text


def test_wrong_app_key_is_wechats_40234(secured: FakeWeChat) -> None:
    other = FakeApiSecurity.generate(secured.appid)
    for error in run_both(config_for(secured, api_app_key=other.app_key_pem), secured):
        assert isinstance(error, ApiSecurityError) and error.errcode == 40234


def test_unsigned_success_is_refused_unread() -> None:
    # A plain success answer to a sealed call (a proxy's, a forger's): the flow, fed by hand.
    config = WxConfig(appid=APPID, secret="s", **FakeApiSecurity.generate(APPID).config_options())
    security = config.api_security
    assert security is not None
    request = ApiRequest("POST", PHONE_NUMBER_PATH, body={"code": "c"}, secure=True)
    flow = sealed_exchange(config, security, request, parse_reply, "token")
    call = next(flow)
    assert call.content is not None and call.params == {"access_token": "token"}
    with pytest.raises(ApiSecurityError, match="failed") as caught:
        flow.send((200, b'{"errcode":0,"phone_info":{"phoneNumber":"1"}}', {}))
    assert "not signed" in str(caught.value.detail)


def test_plain_errors_of_sealed_calls_are_failures_and_missing_security_is_named() -> None:
    with FakeWeChat() as plain:  # WeChat without API security: it cannot read a sealed call
        config = WxConfig(
            appid=plain.appid,
            secret=plain.secret,
            api_base=plain.url,
            **FakeApiSecurity.generate(plain.appid).config_options(),
        )
        for error in run_both(config, plain):
            assert error.status == 502 and error.errcode == 47001
    with FakeWeChat() as fake:
        fake.enable_api_security()
        unconfigured = WxConfig(appid=fake.appid, secret=fake.secret, api_base=fake.url)
        for error in run_both(unconfigured, fake):
            assert isinstance(error, ApiSecurityError) and error.errcode == 40233
            assert "WX_API_" in str(error.detail)


def test_stale_request_is_wechats_40240(
    secured: FakeWeChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This server's clock ten minutes behind, for the seal only (the fake shares the process).
    seal = ApiSecurity.seal

    def late(self: ApiSecurity, url: str, appid: str, fields: Any, now: Any = None) -> Sealed:
        return seal(self, url, appid, fields, time.time() - 600)

    monkeypatch.setattr(ApiSecurity, "seal", late)
    api = WxApi(config_for(secured), MemoryStore())
    try:
        with pytest.raises(ApiSecurityError) as caught:
            api.get_phone_number(secured.issue_phone_code())
        assert caught.value.errcode == 40240 and "clock" in str(caught.value.detail)
    finally:
        api.close()


# --- certificate rotation ---


def test_rotation_accepts_the_deprecated_certificate(secured: FakeWeChat) -> None:
    security = secured.api_security
    assert security is not None
    old = security.certificates[0]
    old_only = config_for(secured)
    new = security.rotate()
    both = config_for(secured)
    new_only = config_for(secured, api_platform_cert=(new.pem,), api_platform_sn=(new.sn,))
    for config in (old_only, both, new_only):
        api = WxApi(config, MemoryStore())
        try:
            assert api.get_phone_number(secured.issue_phone_code())["purePhoneNumber"]
        finally:
            api.close()
    security.end_rotation()
    for error in run_both(old_only, secured):
        assert isinstance(error, ApiSecurityError) and old.sn in str(error.detail)


def test_unsealed_apis_stay_plain(secured: FakeWeChat) -> None:
    session = logged_in(secured)
    api = WxApi(config_for(secured), MemoryStore())
    try:
        assert api.check_session(session)
    finally:
        api.close()
    assert USER_ENCRYPT_KEY_PATH not in [call.path for call in secured.calls]
