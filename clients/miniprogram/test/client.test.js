// The client against stand-in platforms: a scripted server answers each request, so these tests
// need no network. (examples/miniprogram/test/ runs it against a real app and the fake WeChat.)
// Run: `node --test` in clients/miniprogram (tests/packaging/test_client.py does, under tox).
'use strict';

const { describe, test, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { createClient, TOKEN_HEADER, APPID_HEADER } = require('..');

const BASE = 'https://api.example.com';

// A scripted backend: each login code yields a fresh token; /api/me answers 200 for a live token
// and 401 otherwise; /wx/logout ends the session.
function makeServer() {
  const server = { live: new Set(), logins: [], issued: 0 };
  server.handle = ({ url, method, data, header }) => {
    const path = url.slice(BASE.length);
    if (method === 'POST' && path === '/wx/login') {
      server.logins.push(data);
      if (data.code === 'bad') {
        return { status: 401, data: { error: 'invalid_code', message: 'no', errcode: 40029 } };
      }
      server.issued += 1;
      const token = `token-${server.issued}`;
      server.live.add(token);
      return { status: 200, data: { '3rd_session': token, expires_in: 7200 } };
    }
    const token = header[TOKEN_HEADER];
    if (!server.live.has(token)) {
      return { status: 401, data: { error: 'invalid_session', message: 'log in again' } };
    }
    if (method === 'POST' && path === '/wx/logout') {
      server.live.delete(token);
      return { status: 204, data: '' };
    }
    return { status: 200, data: { path, token } };
  };
  return server;
}

// A platform in the wx shape (wx, qq, tt, swan, ks, uni, Taro): callbacks, answers on a later
// tick like the real ones, storage answering '' for a missing key.
function wxLike(server, { loginResult = () => ({ code: 'ok' }) } = {}) {
  const storage = new Map();
  const platform = {
    loginCalls: 0,
    requests: [],
    offline: false,
    login({ success }) {
      platform.loginCalls += 1;
      setImmediate(() => success(loginResult()));
    },
    request(options) {
      platform.requests.push(options);
      setImmediate(() => {
        if (platform.offline) {
          options.fail({ errMsg: 'request:fail timeout' });
          return;
        }
        const { status, data } = server.handle(options);
        options.success({ statusCode: status, data, header: {} });
      });
    },
    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => storage.set(key, value),
    removeStorageSync: (key) => storage.delete(key),
  };
  return platform;
}

// Alipay's `my`: getAuthCode, `headers` in and out, `status`, HTTP errors through fail (error
// 19) with the answer attached, object-style sync storage whose missing key has no data.
function alipayLike(server) {
  const storage = new Map();
  const my = {
    authCalls: 0,
    requests: [],
    getAuthCode({ scopes, success }) {
      my.authCalls += 1;
      my.scopes = scopes;
      setImmediate(() => success({ authCode: 'ok' }));
    },
    request({ url, method, data, headers, success, fail }) {
      my.requests.push({ url, method, data, headers });
      setImmediate(() => {
        const { status, data: body } = server.handle({ url, method, data, header: headers });
        const res = { status, data: body, headers: {} };
        if (status >= 400) fail({ error: 19, errorMessage: 'http status error', ...res });
        else success(res);
      });
    },
    getStorageSync: ({ key }) => ({ data: storage.get(key) }),
    setStorageSync: ({ key, data }) => storage.set(key, data),
    removeStorageSync: ({ key }) => storage.delete(key),
  };
  return my;
}

describe('wx-shaped platforms (wx, qq, tt, swan, ks, uni, Taro)', () => {
  test('a request logs in first and sends the token as 3rd-session', async () => {
    const server = makeServer();
    const platform = wxLike(server);
    const client = createClient({ baseUrl: `${BASE}/`, platform });
    const res = await client.request({ url: '/api/me', header: { 'x-page': 'me' } });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.data, { path: '/api/me', token: 'token-1' });
    assert.deepEqual(server.logins, [{ code: 'ok' }]);
    const [login, me] = platform.requests;
    assert.equal(login.url, `${BASE}/wx/login`);
    assert.equal(login.method, 'POST');
    assert.equal(login.header['content-type'], 'application/json');
    assert.deepEqual(me.header, { 'x-page': 'me', '3rd-session': 'token-1' });
    assert.equal(platform.getStorageSync('3rd-session'), 'token-1');
  });

  test('five concurrent requests without a token share one login', async () => {
    const server = makeServer();
    const platform = wxLike(server);
    const client = createClient({ baseUrl: BASE, platform });
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => client.request({ url: '/api/me' }))
    );
    assert.deepEqual(answers.map((r) => r.statusCode), [200, 200, 200, 200, 200]);
    assert.equal(platform.loginCalls, 1);
    assert.equal(server.logins.length, 1);
  });

  test('a 401 logs in once more and retries; a second 401 rejects', async () => {
    const server = makeServer();
    const platform = wxLike(server);
    platform.setStorageSync('3rd-session', 'stale');
    const client = createClient({ baseUrl: BASE, platform });
    const res = await client.request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
    assert.equal(platform.loginCalls, 1);

    server.handle = () => ({ status: 401, data: { error: 'invalid_session', message: 'no' } });
    await assert.rejects(client.request({ url: '/api/me' }), (err) => {
      assert.equal(err.error, 'invalid_session');
      assert.equal(err.statusCode, 401);
      return true;
    });
  });

  test("a refused login rejects with the server's error and errcode, and is not cached", async () => {
    const server = makeServer();
    const platform = wxLike(server, { loginResult: () => ({ code: 'bad' }) });
    const client = createClient({ baseUrl: BASE, platform });
    const refused = { error: 'invalid_code', statusCode: 401, errcode: 40029 };
    await assert.rejects(client.login(), refused);
    await assert.rejects(client.login(), { error: 'invalid_code' });
    assert.equal(platform.loginCalls, 2);
    assert.equal(platform.getStorageSync('3rd-session'), '');
  });

  test("a failing platform login rejects with login_failed and the platform's message", async () => {
    const platform = wxLike(makeServer());
    platform.login = ({ fail }) => fail({ errMsg: 'login:fail auth deny' });
    const client = createClient({ baseUrl: BASE, platform });
    await assert.rejects(client.login(), {
      error: 'login_failed',
      message: 'login:fail auth deny',
      statusCode: 0,
    });
  });

  test('a network failure rejects with network_error', async () => {
    const platform = wxLike(makeServer());
    platform.setStorageSync('3rd-session', 'token');
    platform.offline = true;
    const client = createClient({ baseUrl: BASE, platform });
    await assert.rejects(client.request({ url: '/api/me' }), {
      error: 'network_error',
      message: 'request:fail timeout',
      statusCode: 0,
    });
  });

  test('logout ends the session and forgets the token', async () => {
    const server = makeServer();
    const platform = wxLike(server);
    const client = createClient({ baseUrl: BASE, platform });
    const token = await client.login();
    await client.logout();
    assert.equal(server.live.has(token), false);
    assert.equal(platform.getStorageSync('3rd-session'), '');
    assert.equal(platform.requests.at(-1).header['3rd-session'], token);
  });

  test("Douyin's anonymous code goes to the login path with the code", async () => {
    const server = makeServer();
    const tt = wxLike(server, { loginResult: () => ({ code: 'ok', anonymousCode: 'anon' }) });
    await createClient({ baseUrl: BASE, platform: tt }).login();
    assert.deepEqual(server.logins, [{ code: 'ok', anonymous_code: 'anon' }]);
  });

  test('Taro-style APIs that also return promises work through their callbacks', async () => {
    const server = makeServer();
    const inner = wxLike(server);
    const taro = {
      ...inner,
      // Taro.login answers a promise as well, Taro.request a RequestTask: the client ignores both.
      login: (o) => {
        inner.login(o);
        return Promise.resolve();
      },
      request: (o) => {
        inner.request(o);
        return { abort() {} };
      },
    };
    const res = await createClient({ baseUrl: BASE, platform: taro }).request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
  });

  test('the login and logout paths and the storage key can be changed', async () => {
    const server = makeServer();
    const original = server.handle;
    server.handle = (o) => original({ ...o, url: o.url.replace('/auth/', '/wx/') });
    const platform = wxLike(server);
    const client = createClient({
      baseUrl: BASE,
      platform,
      loginPath: '/auth/login',
      logoutPath: '/auth/logout',
      storageKey: 'session',
    });
    const token = await client.login();
    assert.equal(platform.getStorageSync('session'), token);
    await client.logout();
    const urls = platform.requests.map((r) => r.url);
    assert.deepEqual(urls, [`${BASE}/auth/login`, `${BASE}/auth/logout`]);
  });
});

describe('the appid option (a backend serving several apps)', () => {
  test('sends X-WX-Appid on the login, on every request and on the logout', async () => {
    const server = makeServer();
    const tt = wxLike(server);
    const client = createClient({ baseUrl: BASE, platform: tt, appid: 'tt0123456789abcdef' });
    await client.request({ url: '/api/me', header: { 'x-page': 'me' } });
    await client.logout();
    assert.equal(APPID_HEADER, 'X-WX-Appid');
    assert.deepEqual(
      tt.requests.map((r) => [r.url.slice(BASE.length), r.header['X-WX-Appid']]),
      [
        ['/wx/login', 'tt0123456789abcdef'],
        ['/api/me', 'tt0123456789abcdef'],
        ['/wx/logout', 'tt0123456789abcdef'],
      ]
    );
    const [login, me] = tt.requests;
    assert.equal(login.header['content-type'], 'application/json');
    assert.deepEqual(me.header, {
      'x-page': 'me',
      'X-WX-Appid': 'tt0123456789abcdef',
      '3rd-session': 'token-1',
    });
  });

  test('goes with the re-login and the retry after a 401', async () => {
    const server = makeServer();
    const ks = wxLike(server);
    ks.setStorageSync('3rd-session', 'stale');
    const client = createClient({ baseUrl: BASE, platform: ks, appid: 'ks671599294546520284' });
    assert.equal((await client.request({ url: '/api/me' })).statusCode, 200);
    assert.deepEqual(
      ks.requests.map((r) => [r.url.slice(BASE.length), r.header[TOKEN_HEADER]]),
      [['/api/me', 'stale'], ['/wx/login', undefined], ['/api/me', 'token-1']]
    );
    for (const sent of ks.requests) assert.equal(sent.header['X-WX-Appid'], 'ks671599294546520284');
  });

  test("goes through Alipay's headers", async () => {
    const my = alipayLike(makeServer());
    const client = createClient({ baseUrl: BASE, platform: my, appid: '2021000000000001' });
    await client.request({ url: '/api/me' });
    await client.logout();
    assert.deepEqual(
      my.requests.map((r) => r.headers['X-WX-Appid']),
      ['2021000000000001', '2021000000000001', '2021000000000001']
    );
  });

  test('without it no appid header is sent', async () => {
    const platform = wxLike(makeServer());
    const client = createClient({ baseUrl: BASE, platform });
    await client.request({ url: '/api/me' });
    await client.logout();
    assert.equal(platform.requests.length, 3);
    for (const sent of platform.requests) assert.ok(!('X-WX-Appid' in sent.header));
  });

  test('an appid that is not a non-empty string is an error', () => {
    const platform = wxLike(makeServer());
    for (const appid of ['', 42, null]) {
      assert.throws(() => createClient({ baseUrl: BASE, platform, appid }), /appid must be/);
    }
  });
});

describe("Alipay's my", () => {
  test('logs in with getAuthCode (auth_base) and uses headers/status and object storage', async () => {
    const server = makeServer();
    const my = alipayLike(server);
    const client = createClient({ baseUrl: BASE, platform: my });
    const res = await client.request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
    assert.equal(my.authCalls, 1);
    assert.equal(my.scopes, 'auth_base');
    assert.deepEqual(server.logins, [{ code: 'ok' }]);
    assert.equal(my.requests[1].headers['3rd-session'], 'token-1');
    assert.equal(my.getStorageSync({ key: '3rd-session' }).data, 'token-1');
  });

  test('an HTTP error (fail with error 19) is an answer: a 401 re-logs in', async () => {
    const server = makeServer();
    const my = alipayLike(server);
    my.setStorageSync({ key: '3rd-session', data: 'stale' });
    const res = await createClient({ baseUrl: BASE, platform: my }).request({ url: '/api/me' });
    assert.equal(res.statusCode, 200);
    assert.equal(my.authCalls, 1);
  });

  test('a network failure (fail without a status) rejects with its errorMessage', async () => {
    const my = alipayLike(makeServer());
    my.request = ({ fail }) => fail({ error: 12, errorMessage: 'network error' });
    await assert.rejects(createClient({ baseUrl: BASE, platform: my }).login(), {
      error: 'network_error',
      message: 'network error',
    });
  });

  test('logout removes the stored token', async () => {
    const server = makeServer();
    const my = alipayLike(server);
    const client = createClient({ baseUrl: BASE, platform: my });
    await client.login();
    await client.logout();
    assert.equal(my.getStorageSync({ key: '3rd-session' }).data, undefined);
    assert.equal(server.live.size, 0);
  });
});

describe('the platform is detected from the globals', () => {
  const names = ['qq', 'tt', 'my', 'swan', 'ks', 'wx'];
  afterEach(() => {
    for (const name of names) delete globalThis[name];
  });

  for (const name of names) {
    test(`${name} alone`, async () => {
      const server = makeServer();
      globalThis[name] = name === 'my' ? alipayLike(server) : wxLike(server);
      const res = await createClient({ baseUrl: BASE }).request({ url: '/api/me' });
      assert.equal(res.statusCode, 200);
      assert.equal(server.logins.length, 1);
    });
  }

  test("a platform's own global wins over its wx alias", async () => {
    const server = makeServer();
    globalThis.wx = wxLike(server);
    globalThis.qq = wxLike(server);
    await createClient({ baseUrl: BASE }).login();
    assert.equal(globalThis.qq.loginCalls, 1);
    assert.equal(globalThis.wx.loginCalls, 0);
  });

  test('an explicit platform wins over the globals', async () => {
    const server = makeServer();
    globalThis.wx = wxLike(server);
    const uni = wxLike(server);
    await createClient({ baseUrl: BASE, platform: uni }).login();
    assert.equal(uni.loginCalls, 1);
    assert.equal(globalThis.wx.loginCalls, 0);
  });

  test('no platform at all is an error naming the option', () => {
    assert.throws(() => createClient({ baseUrl: BASE }), /pass createClient\(\{ platform \}\)/);
  });
});
