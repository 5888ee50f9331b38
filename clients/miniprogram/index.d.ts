// Type declarations for wxmiddleware-miniprogram (index.js).

/** The header that carries the session token: `3rd-session`, with a hyphen. */
export declare const TOKEN_HEADER: '3rd-session';

/**
 * The header that names the app, `X-WX-Appid`: sent when `appid` is given, for a backend that
 * serves several apps (it reads WeChat's `Referer`, which other platforms do not send in a
 * form that names the app).
 */
export declare const APPID_HEADER: 'X-WX-Appid';

/** What a platform's `request` answers (the wx shape). */
export interface PlatformResponse {
  statusCode: number;
  data: unknown;
  header: Record<string, string>;
}

/** A failure callback's argument: `errMsg` on wx-shaped platforms, `errorMessage` on Alipay. */
export interface PlatformFailure {
  errMsg?: string;
  errorMessage?: string;
}

/**
 * A mini-program platform in the wx shape: `wx`, `qq`, `tt`, `swan`, `ks`, uni-app's `uni`,
 * Taro's default export, or an object of your own with these five functions.
 */
export interface WxLikePlatform {
  login(options: {
    success(result: { code: string; anonymousCode?: string }): void;
    fail(error: PlatformFailure): void;
  }): unknown;
  request(options: {
    url: string;
    method: string;
    data?: unknown;
    header: Record<string, string>;
    success(response: PlatformResponse): void;
    fail(error: PlatformFailure): void;
  }): unknown;
  getStorageSync(key: string): unknown;
  setStorageSync(key: string, value: string): unknown;
  removeStorageSync(key: string): unknown;
}

/** Alipay's `my`: recognised by `getAuthCode` without `login`, and adapted to the wx shape. */
export interface AlipayPlatform {
  getAuthCode(options: {
    scopes: string | string[];
    success(result: { authCode: string }): void;
    fail(error: PlatformFailure): void;
  }): unknown;
  request(options: {
    url: string;
    method: string;
    data?: unknown;
    headers: Record<string, string>;
    success(response: { status: number; data: unknown; headers: Record<string, string> }): void;
    /** An HTTP status of 400 or more arrives here (error 19), with the answer. */
    fail(
      error: PlatformFailure & { status?: number; data?: unknown; headers?: Record<string, string> }
    ): void;
  }): unknown;
  getStorageSync(options: { key: string }): { data?: unknown };
  setStorageSync(options: { key: string; data: string }): unknown;
  removeStorageSync(options: { key: string }): unknown;
}

export interface ClientOptions {
  /** The backend's origin, e.g. `https://api.example.com` (a trailing `/` is ignored). */
  baseUrl: string;
  /**
   * The platform object. Default: the first global of `qq`, `tt`, `my`, `swan`, `ks`, `wx`
   * that exists. Pass `uni` or Taro to go through them instead.
   */
  platform?: WxLikePlatform | AlipayPlatform;
  /** Storage key of the token. Default `3rd-session`. */
  storageKey?: string;
  /** The middleware's login path. Default `/wx/login`. */
  loginPath?: string;
  /** The middleware's logout path. Default `/wx/logout`. */
  logoutPath?: string;
  /**
   * The mini-program's appid, sent as `X-WX-Appid` on the login, on every request and on the
   * logout. Needed when the backend serves several apps and this one is not a WeChat app
   * (QQ, Douyin, Alipay, Baidu, Kuaishou); harmless otherwise. Default: not sent. A value that
   * is not a non-empty string makes `createClient` throw.
   */
  appid?: string;
}

export interface RequestOptions {
  /** A path on `baseUrl`, or an absolute `http(s)://` URL. */
  url: string;
  /** Default `GET`. */
  method?: string;
  data?: unknown;
  /** Extra headers; the token header (and the appid header, with `appid`) is added. */
  header?: Record<string, string>;
}

/** How request(), login() and logout() reject. */
export interface ClientError extends Error {
  /**
   * The server's error word (`invalid_code`, `invalid_session`, …), `http_<status>` when the
   * answer had none, `network_error` or `login_failed` (the platform's login failed).
   */
  error: string;
  /** The HTTP status, or 0 when no answer arrived. */
  statusCode: number;
  /** The platform's error code, when the server passed one on. */
  errcode?: number;
}

export interface Client {
  /** Log in now (shared with any login in flight); resolves with the token. */
  login(): Promise<string>;
  /**
   * Send a request with the token, logging in first when there is none and once more on a
   * `401`. Resolves with every answer but a second `401`.
   */
  request(options: RequestOptions): Promise<PlatformResponse>;
  /** End the session on the server and forget the token. */
  logout(): Promise<void>;
}

export declare function createClient(options: ClientOptions): Client;
