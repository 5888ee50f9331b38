// The mini-program client (clients/miniprogram) against a real running app and the fake WeChat
// server, with a stand-in `wx` that does real HTTP. Run by tests/e2e/test_miniprogram.py, or by
// hand:
//
//   wxmiddleware fake-wechat --port 8601 &
//   WX_APPID=... WX_SECRET=... WX_API_BASE=http://127.0.0.1:8601 gunicorn examples.flask_app:app &
//   WX_APP_URL=http://127.0.0.1:8000 FAKE_WECHAT_URL=http://127.0.0.1:8601 \
//     node --test examples/miniprogram/test/
//
// Optional: WX_EXPECTED_OPENID, the openid the fake gives "alice" in this app.
'use strict';

const { describe, test, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('../../../clients/miniprogram');

const APP_URL = process.env.WX_APP_URL;
const FAKE_URL = process.env.FAKE_WECHAT_URL;
const EXPECTED_OPENID = process.env.WX_EXPECTED_OPENID;
const SKIP = APP_URL && FAKE_URL
  ? false
  : 'set WX_APP_URL (the running app) and FAKE_WECHAT_URL (the fake WeChat) to run these tests';
const TIMEOUT_MS = 15000;

// A stand-in for the mini-program's `wx`: wx.login gets a real code from the fake WeChat,
// wx.request is real HTTP, storage is a Map. It counts logins and records every request.
function makeWx() {
  const storage = new Map();
  const wx = {
    loginCalls: 0,
    requests: [],
    // Set to a function to change what setStorageSync really stores.
    storeFilter: null,
    // Set to a function of the recorded request that returns a promise to hold its answer back.
    holdAnswer: null,

    login({ success, fail }) {
      wx.loginCalls += 1;
      fetch(`${FAKE_URL}/fake/code?user=alice`, { signal: AbortSignal.timeout(TIMEOUT_MS) })
        .then((res) => res.json())
        .then(({ code }) => success({ code, errMsg: 'login:ok' }))
        .catch((err) => fail({ errMsg: `login:fail ${err.message}` }));
    },

    request({ url, method = 'GET', data, header = {}, success, fail }) {
      const entry = { url, method, header: { ...header } };
      wx.requests.push(entry);
      const init = { method, headers: { ...header }, signal: AbortSignal.timeout(TIMEOUT_MS) };
      if (data !== undefined && method !== 'GET') {
        init.body = JSON.stringify(data);
        init.headers['content-type'] = 'application/json';
      }
      fetch(url, init)
        .then(async (res) => {
          const text = await res.text();
          let body = text;
          try {
            body = JSON.parse(text); // like wx.request's dataType 'json', falling back to text
          } catch {}
          await (wx.holdAnswer && wx.holdAnswer(entry));
          success({ statusCode: res.status, data: body, header: Object.fromEntries(res.headers) });
        })
        .catch((err) => fail({ errMsg: `request:fail ${err.message}` }));
    },

    // wx.getStorageSync answers '' for a missing key.
    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => {
      storage.set(key, wx.storeFilter ? wx.storeFilter(value) : value);
    },
    removeStorageSync: (key) => storage.delete(key),
    storage,
  };
  return wx;
}

function loginPosts(wx) {
  return wx.requests.filter((r) => r.method === 'POST' && r.url === `${APP_URL}/wx/login`).length;
}

async function upstreamCalls() {
  const res = await fetch(`${FAKE_URL}/fake/calls`);
  return (await res.json()).jscode2session;
}

function assertOpenid(data) {
  assert.equal(typeof data.openid, 'string');
  if (EXPECTED_OPENID) assert.equal(data.openid, EXPECTED_OPENID);
  else assert.match(data.openid, /^o.{27}$/);
}

describe('the client against a running app', { skip: SKIP }, () => {
  let wx;
  let client;

  beforeEach(() => {
    wx = makeWx();
    client = createClient({ baseUrl: APP_URL, platform: wx });
  });

  test('login stores a token and /api/me answers the openid', async () => {
    const token = await client.login();
    assert.equal(typeof token, 'string');
    assert.ok(token.length >= 43);
    assert.equal(wx.getStorageSync('3rd-session'), token);
    assert.equal(wx.loginCalls, 1);

    const res = await client.request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
    assertOpenid(res.data);
    assert.equal(wx.loginCalls, 1, 'a stored token needs no new login');
  });

  test('the token goes in the 3rd-session header (hyphen), never 3rd_session', async () => {
    await client.login();
    const res = await client.request({ url: '/api/me', header: { 'x-page': 'me' } });
    assert.equal(res.statusCode, 200); // gunicorn would have dropped 3rd_session: 401
    const sent = wx.requests.at(-1);
    assert.equal(sent.header['3rd-session'], wx.getStorageSync('3rd-session'));
    assert.equal(sent.header['x-page'], 'me', "the caller's headers are kept");
    assert.ok(!('3rd_session' in sent.header));
  });

  test('a request without a stored token logs in first', async () => {
    const res = await client.request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.loginCalls, 1);
    assert.deepEqual(wx.requests.map((r) => r.url), [`${APP_URL}/wx/login`, `${APP_URL}/api/me`]);
  });

  test('a stale token gets a 401, one re-login and a successful retry', async () => {
    // A real token the server has since forgotten: logged out behind the client's back.
    const stale = await client.login();
    const out = await fetch(`${APP_URL}/wx/logout`, {
      method: 'POST',
      headers: { '3rd-session': stale },
    });
    assert.equal(out.status, 204);
    assert.equal(wx.getStorageSync('3rd-session'), stale);

    const res = await client.request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
    assertOpenid(res.data);
    assert.equal(wx.loginCalls, 2, 'exactly one more wx.login');
    assert.notEqual(wx.getStorageSync('3rd-session'), stale);
    const meCalls = wx.requests.filter((r) => r.url === `${APP_URL}/api/me`);
    assert.deepEqual(meCalls.map((r) => r.header['3rd-session'] === stale), [true, false]);
  });

  test('five concurrent requests without a token share one login', async () => {
    const before = await upstreamCalls();
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => client.request({ url: '/api/me' }))
    );
    for (const res of answers) {
      assert.equal(res.statusCode, 200);
      assertOpenid(res.data);
    }
    assert.equal(wx.loginCalls, 1, 'one wx.login');
    assert.equal(loginPosts(wx), 1, 'one POST to the login path');
    assert.equal((await upstreamCalls()) - before, 1, 'one jscode2session call at the fake');
  });

  test('five concurrent requests with a garbage token share one re-login', async () => {
    wx.setStorageSync('3rd-session', 'A'.repeat(43));
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => client.request({ url: '/api/me' }))
    );
    assert.deepEqual(answers.map((r) => r.statusCode), [200, 200, 200, 200, 200]);
    assert.equal(wx.loginCalls, 1);
    assert.equal(loginPosts(wx), 1);
  });

  test('a 401 that arrives after another caller re-logged in retries without a login', async () => {
    wx.setStorageSync('3rd-session', 'A'.repeat(43));
    // A's 401 is held back (a slow network) until B has re-logged in and retried.
    let release;
    const gate = new Promise((resolve) => { release = resolve; });
    // A's request is sent first (both start in the same tick, A's promise chain first), so it is
    // the first /api/me recorded, whichever answer the server happens to send first.
    wx.holdAnswer = (entry) =>
      entry === wx.requests.find((r) => r.url === `${APP_URL}/api/me`) ? gate : undefined;
    const a = client.request({ url: '/api/me' });
    const b = client.request({ url: '/api/me' });
    assert.equal((await b).statusCode, 200);
    assert.equal(wx.loginCalls, 1);
    release();
    assert.equal((await a).statusCode, 200);
    assert.equal(wx.loginCalls, 1, "A retried with B's token instead of logging in again");
  });

  test('a second 401 after the re-login rejects', async () => {
    // Storage that keeps a corrupted token: every token the server checks is invalid, so the
    // retry after the fresh login is refused too, by the real middleware.
    wx.storeFilter = (token) => `${token}-corrupted`;
    await assert.rejects(client.request({ url: '/api/me' }), (err) => {
      assert.equal(err.statusCode, 401);
      assert.equal(err.error, 'invalid_session');
      assert.ok(err.message);
      return true;
    });
    assert.equal(wx.loginCalls, 2, 'the first login, then one re-login, no more');
    assert.equal(wx.requests.filter((r) => r.url === `${APP_URL}/api/me`).length, 2);
  });

  test("a failed login rejects with the server's JSON error", async () => {
    // A code the fake never issued: the app answers 401 invalid_code.
    wx.login = ({ success }) => {
      wx.loginCalls += 1;
      success({ code: 'never-issued-code' });
    };
    await assert.rejects(client.login(), (err) => {
      assert.equal(err.statusCode, 401);
      assert.equal(err.error, 'invalid_code');
      assert.ok(err.message);
      return true;
    });
    assert.equal(wx.getStorageSync('3rd-session'), '');
    // The failure is not cached: the next call tries again.
    await assert.rejects(client.request({ url: '/api/me' }), { error: 'invalid_code' });
    assert.equal(wx.loginCalls, 2);
  });

  test('a network failure rejects with network_error', async () => {
    const offline = createClient({ baseUrl: 'http://127.0.0.1:1', platform: wx });
    await assert.rejects(offline.request({ url: '/api/me' }), (err) => {
      assert.equal(err.error, 'network_error');
      assert.equal(err.statusCode, 0);
      assert.match(err.message, /^request:fail/);
      return true;
    });
  });

  test('logout ends the session; the next request logs in again', async () => {
    const token = await client.login();
    await client.logout();
    assert.equal(wx.getStorageSync('3rd-session'), '');
    const logoutCall = wx.requests.at(-1);
    assert.equal(logoutCall.method, 'POST');
    assert.equal(logoutCall.url, `${APP_URL}/wx/logout`);
    assert.equal(logoutCall.header['3rd-session'], token);

    // The server really forgot it.
    const old = await fetch(`${APP_URL}/api/me`, { headers: { '3rd-session': token } });
    assert.equal(old.status, 401);

    const res = await client.request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
    assert.equal(wx.loginCalls, 2);
    assert.notEqual(wx.getStorageSync('3rd-session'), token);
  });
});
