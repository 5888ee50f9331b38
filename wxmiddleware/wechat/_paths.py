"""The paths of the WeChat APIs this package calls, written once.

The clients (``_protocol``, ``_token``) and the fake WeChat (``wxmiddleware.testing``) both
import them, so the two can never disagree. Sources: WeChat's server-API reference
(developers.weixin.qq.com/miniprogram/dev/OpenApiDoc/): user-login/code2Session,
mp-access-token/getAccessToken, mp-access-token/getStableAccessToken,
user-info/basic-info/checkSessionKey, user-info/phone-number/getPhoneNumber,
user-login/ResetUserSessionKey, and (under minigame/dev/api-backend/open-api/)
internet/internet.getUserEncryptKey and user-info/auth.checkEncryptedData; the reference's
getPluginOpenPId (``wx.pluginLogin``'s code); for a third-party platform's login,
developers.weixin.qq.com/doc/oplatform/openApi/OpenApiDoc/miniprogram-management/others/
thirdpartyCode2Session.html.
"""

JSCODE2SESSION_PATH = "/sns/jscode2session"
COMPONENT_JSCODE2SESSION_PATH = "/sns/component/jscode2session"
TOKEN_PATH = "/cgi-bin/token"  # noqa: S105 (a URL path)
STABLE_TOKEN_PATH = "/cgi-bin/stable_token"  # noqa: S105 (a URL path)
CHECK_SESSION_PATH = "/wxa/checksession"
PHONE_NUMBER_PATH = "/wxa/business/getuserphonenumber"
RESET_SESSION_KEY_PATH = "/wxa/resetusersessionkey"
USER_ENCRYPT_KEY_PATH = "/wxa/business/getuserencryptkey"
CHECK_ENCRYPTED_MSG_PATH = "/wxa/business/checkencryptedmsg"
PLUGIN_OPENPID_PATH = "/wxa/getpluginopenpid"
