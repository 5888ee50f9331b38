/*
 * wxmiddleware-miniprogram: the mini-program side of wxmiddleware (SPDX-License-Identifier: MIT).
 * No dependencies. It works with WeChat (wx), QQ (qq), Douyin/Toutiao (tt), Alipay (my),
 * Baidu (swan) and Kuaishou (ks), and with uni-app's `uni` and Taro passed in as the platform.
 *
 *   // app.js
 *   const { createClient } = require('wxmiddleware-miniprogram');
 *   App({ api: createClient({ baseUrl: 'https://api.example.com' }) });  // platform detected
 *   // A backend serving several apps: non-WeChat apps name theirs (sent as X-WX-Appid).
 *   App({ api: createClient({ baseUrl: 'https://api.example.com', appid: 'tt0123456789abcdef' }) });
 *
 *   // pages/me/me.js
 *   const { api } = getApp();
 *   Page({
 *     onLoad() {
 *       // Logs in first if needed, sends the token, re-logs in once if the session expired.
 *       api.request({ url: '/api/me' })
 *         .then((res) => this.setData({ openid: res.data.openid }))
 *         .catch((err) => console.error(err.error, err.message));
 *     },
 *     onLogout() { api.logout(); },
 *   });
 *
 * request() resolves with { statusCode, data, header } for every HTTP status (like wx.request),
 * except a 401 that is still a 401 after one fresh login: that, a failed login and a network
 * failure reject with an Error carrying { error, message, statusCode } (and the platform's
 * errcode when the server sent one).
 *
 * Written with plain promises (no async/await) so it runs without the "enhanced compile" option.
 */
'use strict';

// The token goes in `3rd-session`, with a hyphen. The server also accepts `3rd_session`, but
// gunicorn, werkzeug's server, waitress and nginx (underscores_in_headers off) silently drop
// request headers whose names contain an underscore, so that form never reaches the app and
// every request would answer 401.
var TOKEN_HEADER = '3rd-session';

// The app a request is for, when one backend serves several apps. The backend reads WeChat's
// Referer (servicewechat.com/{appid}/…), which no other platform documents in a form that
// names the app, so their clients must say it in this header (docs/platforms.md).
var APPID_HEADER = 'X-WX-Appid';

// The platform's global object. `wx` comes last because other runtimes (QQ's among them)
// also define it as an alias of their own object.
function detectPlatform() {
  /* global qq, tt, my, swan, ks, wx */
  if (typeof qq !== 'undefined') return qq;
  if (typeof tt !== 'undefined') return tt;
  if (typeof my !== 'undefined') return my;
  if (typeof swan !== 'undefined') return swan;
  if (typeof ks !== 'undefined') return ks;
  if (typeof wx !== 'undefined') return wx;
  throw new Error(
    'wxmiddleware: no mini-program platform found (wx, qq, tt, my, swan, ks); ' +
      'pass createClient({ platform })'
  );
}

// Alipay's `my` differs from the wx shape the rest of this file uses: the code comes from
// getAuthCode as authCode, requests take `headers` and answer `status` / `headers`, and sync
// storage takes and returns objects. uni-app and Taro already present Alipay in the wx shape
// (they have `login`), so only an object with getAuthCode and no login is adapted.
function fromAlipay(my) {
  function answer(res) {
    return { statusCode: res.status, data: res.data, header: res.headers };
  }
  return {
    login: function (o) {
      my.getAuthCode({
        // Silent: the user id, without a consent dialog.
        scopes: 'auth_base',
        success: function (res) { o.success({ code: res.authCode }); },
        fail: o.fail,
      });
    },
    request: function (o) {
      my.request({
        url: o.url,
        method: o.method,
        data: o.data,
        headers: o.header,
        success: function (res) { o.success(answer(res)); },
        // An HTTP status of 400 or more is a failure (error 19) that still carries the answer.
        fail: function (err) {
          if (err && err.status > 0) o.success(answer(err));
          else o.fail(err);
        },
      });
    },
    getStorageSync: function (key) { return my.getStorageSync({ key: key }).data; },
    setStorageSync: function (key, data) { my.setStorageSync({ key: key, data: data }); },
    removeStorageSync: function (key) { my.removeStorageSync({ key: key }); },
  };
}

function asPlatform(platform) {
  var p = platform || detectPlatform();
  var alipay = typeof p.login !== 'function' && typeof p.getAuthCode === 'function';
  return alipay ? fromAlipay(p) : p;
}

// wx.* fail callbacks carry errMsg; Alipay's carry errorMessage.
function failMessage(err, fallback) {
  return (err && (err.errMsg || err.errorMessage)) || fallback;
}

function createClient(options) {
  var baseUrl = options.baseUrl.replace(/\/+$/, '');
  var platform = asPlatform(options.platform);
  var storageKey = options.storageKey || '3rd-session';
  var loginPath = options.loginPath || '/wx/login';
  var logoutPath = options.logoutPath || '/wx/logout';
  var appid = options.appid;
  if (appid !== undefined && (typeof appid !== 'string' || !appid)) {
    throw new Error('wxmiddleware: appid must be the app\'s appid, a non-empty string');
  }

  // `header` with the appid header added when an appid was given: login, requests and
  // logout all need it, since the backend picks the app before it reads anything else.
  function withApp(header) {
    if (appid) header[APPID_HEADER] = appid;
    return header;
  }

  // The login in flight, if any: every caller that needs a token meanwhile shares it, so many
  // requests that start without a token (or all get a 401 together) cost one login and one POST.
  var pendingLogin = null;

  function call(method, path, data, header) {
    return new Promise(function (resolve, reject) {
      platform.request({
        url: /^https?:\/\//.test(path) ? path : baseUrl + path,
        method: method,
        data: data,
        header: header,
        success: function (res) {
          resolve({ statusCode: res.statusCode, data: res.data, header: res.header });
        },
        fail: function (err) {
          reject(clientError('network_error', failMessage(err, 'request failed'), 0));
        },
      });
    });
  }

  // A stored token, or '' (wx answers '' for a missing key, Alipay undefined).
  function storedToken() {
    return platform.getStorageSync(storageKey) || '';
  }

  function doLogin() {
    return new Promise(function (resolve, reject) {
      platform.login({
        success: resolve,
        fail: function (err) {
          reject(clientError('login_failed', failMessage(err, 'login failed'), 0));
        },
      });
    }).then(function (res) {
      var body = { code: res.code };
      // Douyin's tt.login also gives an anonymous code, which its code2session accepts too.
      if (res.anonymousCode) body.anonymous_code = res.anonymousCode;
      return call('POST', loginPath, body, withApp({ 'content-type': 'application/json' }));
    }).then(function (res) {
      var token = res.statusCode === 200 && res.data && res.data['3rd_session'];
      if (!token) throw serverError(res);
      platform.setStorageSync(storageKey, token);
      return token;
    });
  }

  function login() {
    if (!pendingLogin) {
      pendingLogin = doLogin().then(
        function (token) { pendingLogin = null; return token; },
        function (err) { pendingLogin = null; throw err; }
      );
    }
    return pendingLogin;
  }

  function request(opts) {
    // Storage is the source of truth: another client instance, or a login finished by another
    // caller, may have changed the token since this request started.
    function send() {
      var token = storedToken();
      var header = withApp(Object.assign({}, opts.header));
      header[TOKEN_HEADER] = token;
      return call(opts.method || 'GET', opts.url, opts.data, header).then(function (res) {
        return { res: res, token: token };
      });
    }

    var ready = storedToken() ? Promise.resolve() : login();
    return ready.then(send).then(function (first) {
      if (first.res.statusCode !== 401) return first.res;
      // Log in again only if nobody has replaced the token we sent; if someone has (a
      // concurrent request's re-login finished first), just retry with theirs.
      var fresh = storedToken() === first.token ? login() : Promise.resolve();
      return fresh.then(send).then(function (second) {
        if (second.res.statusCode === 401) throw serverError(second.res);
        return second.res;
      });
    });
  }

  function logout() {
    var token = storedToken();
    var forget = function () { platform.removeStorageSync(storageKey); };
    if (!token) {
      forget();
      return Promise.resolve();
    }
    var header = withApp({});
    header[TOKEN_HEADER] = token;
    // Forget the token whatever the server says: 204 ends the session, a 401 means it had
    // already ended. Only a network failure is reported (the session may still be live until
    // its idle timeout).
    return call('POST', logoutPath, undefined, header).then(forget, function (err) {
      forget();
      throw err;
    });
  }

  return { login: login, request: request, logout: logout };
}

function clientError(error, message, statusCode) {
  var err = new Error(message);
  err.error = error;
  err.statusCode = statusCode;
  return err;
}

// The server's JSON error ({ error, message, errcode? }) as an Error with statusCode added.
function serverError(res) {
  var body = res.data && typeof res.data === 'object' ? res.data : {};
  var err = clientError(
    body.error || 'http_' + res.statusCode,
    body.message || 'HTTP ' + res.statusCode,
    res.statusCode
  );
  if (body.errcode !== undefined) err.errcode = body.errcode;
  return err;
}

module.exports = {
  createClient: createClient,
  TOKEN_HEADER: TOKEN_HEADER,
  APPID_HEADER: APPID_HEADER,
};
