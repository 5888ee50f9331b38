"""The login rate limiters: the counters of the ``limits`` library, sync and async.

The core decides whom a login counts for and what a full limit answers
(:mod:`wxmiddleware.core._limits`); a performer carries out its
:class:`~wxmiddleware.core.RateCheck` with one of these. They differ only in ``await``.
``limits`` is imported when a limiter is built, so only apps with a limit need
``wxmiddleware[ratelimit]``.

Counters use fixed windows (``limits``' ``FixedWindowRateLimiter``) keyed
``wxmiddleware/login/client/<appid>/<address>`` and ``wxmiddleware/login/app/<appid>``, in
the storage :func:`storage_url` names: apps that share a Redis keep their budgets apart. A
storage that fails (a Redis that is down) is :class:`~wxmiddleware.errors.StoreUnavailable`,
the middleware's ``503``.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .config import WxConfig
from .errors import ConfigError, StoreUnavailable

__all__ = ["AsyncLoginLimiter", "LoginLimiter", "storage_url"]

_REDIS_SCHEMES = ("redis://", "rediss://")


def storage_url(config: WxConfig, asynchronous: bool) -> str:
    """The ``limits`` storage URL for ``config``: ``rate_limit_storage`` when set, else the
    store's Redis (a ``redis://`` or ``rediss://`` ``store``), else memory; with the
    ``async+`` prefix ``limits`` wants for an asynchronous storage."""
    url = config.rate_limit_storage
    if url is None:
        store = config.store or ""
        url = store if store.startswith(_REDIS_SCHEMES) else "memory://"
    if asynchronous and not url.startswith("async+"):
        url = "async+" + url
    return url


def _rules(config: WxConfig) -> Tuple[Any, List[Tuple[Any, Tuple[str, ...], bool]]]:
    """``(limits module, [(limit item, key parts, per client)])`` for ``config``."""
    try:
        import limits
    except ImportError:
        raise ConfigError(
            'login_rate_limit needs the limits library: pip install "wxmiddleware[ratelimit]"'
        ) from None
    rules: List[Tuple[Any, Tuple[str, ...], bool]] = []
    for text, parts, per_client in (
        (config.login_rate_limit, ("wxmiddleware", "login", "client", config.appid), True),
        (config.app_login_rate_limit, ("wxmiddleware", "login", "app", config.appid), False),
    ):
        if text is None:
            continue
        try:
            items = limits.parse_many(text)
        except ValueError:
            raise ConfigError(f"not a rate limit: {text!r} (e.g. '10/minute')") from None
        rules.extend((item, parts, per_client) for item in items)
    return limits, rules


def _storage_options(url: str) -> Dict[str, Any]:
    # limits talks to Redis through redis-py (the store's client library), not coredis.
    return {"implementation": "redispy"} if url.startswith("async+redis") else {}


def _counted(
    rules: List[Tuple[Any, Tuple[str, ...], bool]], client: Optional[str]
) -> Iterator[Tuple[Any, Tuple[str, ...]]]:
    """``(limit, key)`` of every limit a login of ``client`` counts against (``None``:
    unknown, only the app's budget counts)."""
    for item, parts, per_client in rules:
        if not per_client:
            yield item, parts
        elif client is not None:
            yield item, (*parts, client)


def _unavailable(error: Exception) -> StoreUnavailable:
    return StoreUnavailable(detail=f"rate limit storage: {type(error).__name__}")


class LoginLimiter:
    """The synchronous limiter: :meth:`hit` counts a login against every limit."""

    def __init__(self, config: WxConfig) -> None:
        limits, self._rules = _rules(config)
        url = storage_url(config, asynchronous=False)
        storage = limits.storage.storage_from_string(url)
        self._strategy = limits.strategies.FixedWindowRateLimiter(storage)

    def hit(self, client: Optional[str]) -> Optional[float]:
        """Count one login of ``client`` (``None``: unknown, only the app's budget counts);
        ``None`` when every limit had room, else the seconds until the full one resets.
        Raises :class:`~wxmiddleware.errors.StoreUnavailable` when the storage fails."""
        try:
            for item, key in _counted(self._rules, client):
                if not self._strategy.hit(item, *key):
                    reset_at: float = self._strategy.get_window_stats(item, *key).reset_time
                    return max(0.0, reset_at - time.time())
        except Exception as error:  # only storage I/O happens here
            raise _unavailable(error) from None
        return None


class AsyncLoginLimiter:
    """The asynchronous limiter (``limits.aio``): :class:`LoginLimiter` with ``await``."""

    def __init__(self, config: WxConfig) -> None:
        self._limits, self._rules = _rules(config)
        self._url = storage_url(config, asynchronous=True)
        self._strategy: Any = None

    async def hit(self, client: Optional[str]) -> Optional[float]:
        """See :meth:`LoginLimiter.hit`."""
        if self._strategy is None:
            # Made in the event loop: an asyncio Redis client made outside one fails on
            # Python 3.9 ("no current event loop").
            from limits.aio.strategies import FixedWindowRateLimiter

            storage = self._limits.storage.storage_from_string(
                self._url, **_storage_options(self._url)
            )
            self._strategy = FixedWindowRateLimiter(storage)
        try:
            for item, key in _counted(self._rules, client):
                if not await self._strategy.hit(item, *key):
                    stats = await self._strategy.get_window_stats(item, *key)
                    reset_at: float = stats.reset_time
                    return max(0.0, reset_at - time.time())
        except Exception as error:  # only storage I/O happens here
            raise _unavailable(error) from None
        return None
