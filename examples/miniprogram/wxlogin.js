/*
 * wxlogin.js: the mini-program side of wxmiddleware. Copy this one file into your mini-program.
 * It has no dependencies and uses only wx.* APIs.
 *
 *   // app.js
 *   const { createClient } = require('./utils/wxlogin.js');
 *   App({ api: createClient({ baseUrl: 'https://api.example.com', wx }) });
 *
 *   // pages/me/me.js
 *   const { api } = getApp();
 *   Page({
 *     onLoad() {
 *       // Logs in first if needed, sends the token, re-logs in once if the session expired.
 *       api.request({ url: '/api/me' })
 *         .then((res) => this.setData({ openid: res.data.openid }))
 *         .catch((err) => wx.showToast({ title: err.message, icon: 'none' }));
 *     },
 *     onLogout() { api.logout(); },
 *   });
 *
 * request() resolves with { statusCode, data, header } for every HTTP status (like wx.request),
 * except a 401 that is still a 401 after one fresh login: that, a failed login and a network
 * failure reject with an Error carrying { error, message, statusCode } (and WeChat's errcode when
 * the server sent one).
 *
 * Written with plain promises (no async/await) so it runs without the "enhanced compile" option.
 */
'use strict';

// The token goes in `3rd-session`, with a hyphen. The server also accepts `3rd_session`, but
// gunicorn, werkzeug's server, waitress and nginx (underscores_in_headers off) silently drop
// request headers whose names contain an underscore, so that form never reaches the app and
// every request would answer 401.
var TOKEN_HEADER = '3rd-session';

function createClient(options) {
  var baseUrl = options.baseUrl.replace(/\/+$/, '');
  var wx = options.wx;
  var storageKey = options.storageKey || '3rd-session';
  var loginPath = options.loginPath || '/wx/login';
  var logoutPath = options.logoutPath || '/wx/logout';

  // The login in flight, if any: every caller that needs a token meanwhile shares it, so many
  // requests that start without a token (or all get a 401 together) cost one wx.login and one POST.
  var pendingLogin = null;

  function call(method, path, data, header) {
    return new Promise(function (resolve, reject) {
      wx.request({
        url: /^https?:\/\//.test(path) ? path : baseUrl + path,
        method: method,
        data: data,
        header: header,
        success: function (res) {
          resolve({ statusCode: res.statusCode, data: res.data, header: res.header });
        },
        fail: function (err) {
          reject(clientError('network_error', (err && err.errMsg) || 'request failed', 0));
        },
      });
    });
  }

  function doLogin() {
    return new Promise(function (resolve, reject) {
      wx.login({
        success: function (res) { resolve(res.code); },
        fail: function (err) {
          reject(clientError('wx_login_failed', (err && err.errMsg) || 'wx.login failed', 0));
        },
      });
    }).then(function (code) {
      return call('POST', loginPath, { code: code }, { 'content-type': 'application/json' });
    }).then(function (res) {
      var token = res.statusCode === 200 && res.data && res.data['3rd_session'];
      if (!token) throw serverError(res);
      wx.setStorageSync(storageKey, token);
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
      var token = wx.getStorageSync(storageKey);
      var header = Object.assign({}, opts.header);
      header[TOKEN_HEADER] = token;
      return call(opts.method || 'GET', opts.url, opts.data, header).then(function (res) {
        return { res: res, token: token };
      });
    }

    var ready = wx.getStorageSync(storageKey) ? Promise.resolve() : login();
    return ready.then(send).then(function (first) {
      if (first.res.statusCode !== 401) return first.res;
      // Log in again only if nobody has replaced the token we sent; if someone has (a
      // concurrent request's re-login finished first), just retry with theirs.
      var fresh = wx.getStorageSync(storageKey) === first.token ? login() : Promise.resolve();
      return fresh.then(send).then(function (second) {
        if (second.res.statusCode === 401) throw serverError(second.res);
        return second.res;
      });
    });
  }

  function logout() {
    var token = wx.getStorageSync(storageKey);
    var forget = function () { wx.removeStorageSync(storageKey); };
    if (!token) {
      forget();
      return Promise.resolve();
    }
    var header = {};
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

module.exports = { createClient: createClient, TOKEN_HEADER: TOKEN_HEADER };
