// The mini-program client (clients/miniprogram) against a real running backend that serves two
// apps, a WeChat app and a Douyin app, with the fake WeChat behind it. Only WeChat names the
// app in its Referer, so the Douyin app logs in through the client's `appid` option (the
// X-WX-Appid header). Run by tests/packaging/test_client.py, which starts the backend and the
// fake and sets:
//
//   WX_APP_URL          the backend (its /api/me answers { openid, platform, appid })
//   FAKE_WECHAT_URL     the fake WeChat (GET /fake/code?user=alice gives a WeChat code)
//   WX_WECHAT_APPID     the WeChat app
//   WX_DOUYIN_APPID     the Douyin app
//   WX_DOUYIN_CODES     a JSON list of codes the fake issued to alice in the Douyin app
//   WX_DOUYIN_OPENID    alice's openid in the Douyin app
'use strict';

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('../../clients/miniprogram');

const APP_URL = process.env.WX_APP_URL;
const FAKE_URL = process.env.FAKE_WECHAT_URL;
const WECHAT_APPID = process.env.WX_WECHAT_APPID;
const DOUYIN_APPID = process.env.WX_DOUYIN_APPID;
const DOUYIN_CODES = JSON.parse(process.env.WX_DOUYIN_CODES || '[]');
const DOUYIN_OPENID = process.env.WX_DOUYIN_OPENID;
const SKIP =
  APP_URL && FAKE_URL && WECHAT_APPID && DOUYIN_APPID && DOUYIN_CODES.length && DOUYIN_OPENID
    ? false
    : 'tests/packaging/test_client.py starts the backend and sets the variables these tests need';
const TIMEOUT_MS = 15000;

// A stand-in platform in the wx shape: `code()` gives a login code, requests are real HTTP
// (carrying `referer`, as a WeChat page's do, when given), storage is a Map.
function makePlatform({ code, referer }) {
  const storage = new Map();
  const platform = {
    loginCalls: 0,
    requests: [],
    login({ success, fail }) {
      platform.loginCalls += 1;
      code().then((value) => success({ code: value }), (err) => fail({ errMsg: err.message }));
    },
    request({ url, method = 'GET', data, header = {}, success, fail }) {
      platform.requests.push({ url, method, header: { ...header } });
      const headers = { ...header };
      if (referer) headers.Referer = referer;
      const init = { method, headers, signal: AbortSignal.timeout(TIMEOUT_MS) };
      if (data !== undefined) init.body = JSON.stringify(data);
      fetch(url, init)
        .then(async (res) => {
          const text = await res.text();
          let body = text;
          try {
            body = JSON.parse(text);
          } catch {}
          success({ statusCode: res.status, data: body, header: Object.fromEntries(res.headers) });
        })
        .catch((err) => fail({ errMsg: `request:fail ${err.message}` }));
    },
    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => storage.set(key, value),
    removeStorageSync: (key) => storage.delete(key),
  };
  return platform;
}

// tt.login: the next of the codes the fake issued for the Douyin app.
const douyinCodes = [...DOUYIN_CODES];
function douyinCode() {
  const code = douyinCodes.shift();
  return code ? Promise.resolve(code) : Promise.reject(new Error('no Douyin code left'));
}

function wechatCode() {
  return fetch(`${FAKE_URL}/fake/code?user=alice`, { signal: AbortSignal.timeout(TIMEOUT_MS) })
    .then((res) => res.json())
    .then(({ code }) => code);
}

describe('a backend serving a WeChat app and a Douyin app', { skip: SKIP }, () => {
  test('the Douyin app logs in through the appid option, is served and logs out', async () => {
    const tt = makePlatform({ code: douyinCode });
    const client = createClient({ baseUrl: APP_URL, platform: tt, appid: DOUYIN_APPID });
    const res = await client.request({ url: '/api/me' });
    assert.equal(res.statusCode, 200, JSON.stringify(res.data));
    assert.deepEqual(res.data, { openid: DOUYIN_OPENID, platform: 'douyin', appid: DOUYIN_APPID });
    assert.equal(tt.loginCalls, 1);
    const token = tt.getStorageSync('3rd-session');

    await client.logout();
    assert.deepEqual(
      tt.requests.map((r) => [r.method, r.url.slice(APP_URL.length), r.header['X-WX-Appid']]),
      [
        ['POST', '/wx/login', DOUYIN_APPID],
        ['GET', '/api/me', DOUYIN_APPID],
        ['POST', '/wx/logout', DOUYIN_APPID],
      ]
    );
    // The logout reached the Douyin app: the server forgot the token.
    const old = await fetch(`${APP_URL}/api/me`, {
      headers: { '3rd-session': token, 'X-WX-Appid': DOUYIN_APPID },
    });
    assert.equal(old.status, 401);
  });

  test('without the appid option the backend cannot tell the Douyin app: 400', async () => {
    const tt = makePlatform({ code: douyinCode });
    const client = createClient({ baseUrl: APP_URL, platform: tt });
    await assert.rejects(client.login(), { statusCode: 400, error: 'bad_request' });
    assert.equal(tt.getStorageSync('3rd-session'), '');
  });

  test('the WeChat app beside it logs in by its Referer; a token is its app\'s only', async () => {
    const referer = `https://servicewechat.com/${WECHAT_APPID}/0/page-frame.html`;
    const wx = makePlatform({ code: wechatCode, referer });
    const res = await createClient({ baseUrl: APP_URL, platform: wx }).request({ url: '/api/me' });
    assert.equal(res.statusCode, 200, JSON.stringify(res.data));
    assert.equal(res.data.platform, 'wechat');
    assert.equal(res.data.appid, WECHAT_APPID);
    assert.ok(!('X-WX-Appid' in wx.requests[0].header));

    const elsewhere = await fetch(`${APP_URL}/api/me`, {
      headers: { '3rd-session': wx.getStorageSync('3rd-session'), 'X-WX-Appid': DOUYIN_APPID },
    });
    assert.equal(elsewhere.status, 401);
  });
});
