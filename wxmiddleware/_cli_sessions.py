"""``wxmiddleware sessions``: list, end and purge stored sessions by openid, on a store named
explicitly or found as the app finds it; never shows a token or a session_key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, List, Mapping, NamedTuple, Optional
from urllib.parse import urlsplit, urlunsplit

from ._apps import app_tuple, load_apps_file
from ._sealing import Sealer
from .errors import ConfigError, StoreUnavailable
from .session import SessionScope
from .stores import SessionStore, default_sqlite_path, open_store, store_url_scheme
from .stores.base import SessionInfo

#: Exit codes of ``wxmiddleware sessions`` and ``store init`` (argparse itself exits 2 on bad
#: arguments).
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_STORE_UNAVAILABLE = 3


def _format_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


class AdminStore(NamedTuple):
    """The store a ``sessions`` command works on, as the command will report it."""

    #: The URL to open: a ``sqlite:///`` path made absolute, other URLs as given.
    url: str
    #: The URL as printed: absolute for SQLite, a Redis password replaced by ``***``.
    shown: str
    #: Where it came from: ``--store``, ``WX_SESSION_STORE``, or the app's default.
    source: str


def _redacted(url: str) -> str:
    """``url`` with the password of its userinfo, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def resolve_admin_store(
    store: Optional[str], appid: Optional[str], environ: Mapping[str, str]
) -> AdminStore:
    """Which store a ``sessions`` command opens, without opening (or creating) anything.

    ``--store`` wins; else ``WX_SESSION_STORE``, the variable the app's
    :meth:`~wxmiddleware.WxConfig.from_env` reads; else the app's default SQLite file for
    ``appid`` (``--appid`` or ``WX_APPID``). A ``sqlite:///`` path is resolved against the
    working directory now, as the store would resolve it, and must name an existing file:
    an administration command that created an empty store would report "0 sessions ended"
    on the wrong database. ``memory://`` is refused (it lives inside the app's process).

    Raises :class:`~wxmiddleware.errors.ConfigError` naming the resolved path or the
    missing setting.
    """
    if store:
        url, source = store, "--store"
    elif environ.get("WX_SESSION_STORE", "").strip():
        url, source = environ["WX_SESSION_STORE"].strip(), "WX_SESSION_STORE, as the app reads it"
    elif appid:
        path = default_sqlite_path(appid)
        url, source = f"sqlite:///{path}", f"the app's default for appid {appid}"
    else:
        raise ConfigError(
            "name the store: --store URL, or WX_SESSION_STORE as the app has it, or --appid"
            " (or WX_APPID) for the app's default SQLite store"
        )
    scheme = store_url_scheme(url)
    if scheme == "memory":
        raise ConfigError(
            "memory:// sessions live inside the app's process; this command cannot reach them"
        )
    if scheme != "sqlite" or not url.lower().startswith("sqlite:///"):
        # Redis and unknown URLs: open_store checks them (and never creates a Redis).
        return AdminStore(url, _redacted(url), source)
    path = Path(url[len("sqlite:///") :])
    if "?" in str(path) or "#" in str(path) or not str(path):
        return AdminStore(url, url, source)  # malformed: open_store's error explains it
    absolute = path if path.is_absolute() else Path.cwd() / path
    if not absolute.is_file():
        raise ConfigError(
            f"no session store at {absolute} (from {source}): check the path;"
            " this command never creates a store"
        )
    if not _holds_sessions(absolute):
        raise ConfigError(
            f"{absolute} (from {source}) is not a wxmiddleware session store (no wx_sessions"
            " table): check the path; this command never creates a store"
        )
    resolved = f"sqlite:///{absolute}"
    return AdminStore(resolved, resolved, source)


def _holds_sessions(path: Path) -> bool:
    """Whether ``path`` is a SQLite database with the store's session table, read without
    writing (an empty file or another program's database is not a store to write into)."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'wx_sessions'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return found is not None


def _open_admin_store(args: argparse.Namespace) -> SessionStore:
    chosen = resolve_admin_store(
        args.store, default_store_appid(args.appid, os.environ), os.environ
    )
    print(f"store: {chosen.shown} (from {chosen.source})", file=sys.stderr, flush=True)
    # The appid names only the default SQLite file, resolved above; open_store ignores it
    # for a URL.
    return open_store(chosen.url, "")


def _print_progress(count: int) -> None:
    print(f"\rpurged {count} expired sessions so far...", end="", file=sys.stderr, flush=True)


def _run_sessions_command(args: argparse.Namespace, store: SessionStore) -> int:
    action = args.action
    if action == "list":
        infos = _app_sessions(store, args)
        if args.json:
            print(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
        elif not infos:
            print(f"no live sessions for {args.openid}")
        else:
            print(f"{'session':<14}{'app':<20}{'created':<21}{'idle until':<21}expires")
            for info in infos:
                print(
                    f"{info.key_hash:<14}{info.appid or '-':<20}{_format_time(info.created_at):<21}"
                    f"{_format_time(info.idle_until):<21}{_format_time(info.expires_at)}"
                )
        return 0
    if action == "revoke":
        if store.revoke_session(args.openid, args.session):
            print(f"ended session {args.session} of {args.openid}")
            return 0
        print(f"no live session {args.session} for {args.openid}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if action == "revoke-all":
        if args.appid:
            apps = [args.appid]
        else:  # every app the user has live sessions in
            apps = sorted({info.appid for info in store.sessions_for(args.openid)})
        ended = sum(store.revoke_all(args.openid, admin_scope(appid)) for appid in apps)
        print(f"ended {ended} sessions of {args.openid}")
        return 0
    purged = store.purge_expired(progress=_print_progress)
    print(f"\rpurged {purged} expired sessions" + " " * 20, file=sys.stderr)
    return 0


def _app_sessions(store: SessionStore, args: argparse.Namespace) -> List[SessionInfo]:
    """The user's live sessions; with ``--appid``, those of that app only (a store that
    does not record its sessions' app shows them all)."""
    infos = store.sessions_for(args.openid)
    if args.appid:
        infos = [info for info in infos if info.appid in ("", args.appid)]
    return infos


def admin_scope(appid: str) -> SessionScope:
    """The scope in which an administration command ends ``appid``'s sessions
    (:meth:`~wxmiddleware.stores.base.SessionStore.revoke_all` reads only its appid).

    The command has no app secret or store key, and needs none: it never reads or writes a
    session_key, so the scope's sealing key is a random one that opens nothing.
    """
    return SessionScope(appid, Sealer([secrets.token_urlsafe(32)]))


def default_store_appid(appid: Optional[str], environ: Mapping[str, str]) -> Optional[str]:
    """The appid whose default SQLite file the app uses: with several apps
    (``WX_APPS``/``WX_APPS_FILE``) the first one's, for every app; else ``appid``
    (``--appid``) or ``WX_APPID``."""
    apps_text = environ.get("WX_APPS", "").strip()
    apps_file = environ.get("WX_APPS_FILE", "").strip()
    if apps_text or apps_file:
        apps = app_tuple(apps_text) if apps_text else load_apps_file(apps_file)
        if apps:
            return apps[0].appid
    return appid or environ.get("WX_APPID")


def sessions(args: argparse.Namespace) -> int:
    """List, end and purge stored sessions; never shows a token or a session_key."""
    try:
        store = _open_admin_store(args)
    except ConfigError as exc:
        print(f"wxmiddleware sessions: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run_sessions_command(args, store)
    except StoreUnavailable as exc:
        cause = f" ({exc.detail})" if exc.detail else ""
        print(f"wxmiddleware sessions: the store is unavailable{cause}", file=sys.stderr)
        return EXIT_STORE_UNAVAILABLE
    finally:
        store.close()


def add_sessions_parser(commands: Any) -> None:
    """Add ``sessions`` and its actions to the subcommands ``commands``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--store",
        help="store URL, as WX_SESSION_STORE takes it (default: $WX_SESSION_STORE, as the app"
        " reads it, else the app's default SQLite store); never created",
    )
    parent.add_argument(
        "--appid",
        help="the app (default: $WX_APPID): names its default SQLite store, and with several"
        " apps in one store, `list` and `revoke-all` work on that app's sessions only",
    )
    manage = commands.add_parser(
        "sessions",
        help="list, end or purge stored sessions",
        description="Administer stored sessions by openid. Tokens and session keys are never"
        " shown; a session is named by the short hash `list` prints. Every command first"
        " prints (on stderr) which store it opened and why; a SQLite store that does not"
        " exist is an error, never created. Exit codes: 0 done,"
        f" {EXIT_NOT_FOUND} no such session, {EXIT_USAGE} bad arguments,"
        f" {EXIT_STORE_UNAVAILABLE} store unavailable.",
    )
    actions = manage.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[parent], help="list a user's live sessions")
    listing.add_argument("--openid", required=True)
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = actions.add_parser("revoke", parents=[parent], help="end one session")
    revoke.add_argument("--openid", required=True)
    revoke.add_argument("--session", required=True, help="the short hash `list` prints")
    revoke_all = actions.add_parser(
        "revoke-all",
        parents=[parent],
        help="end every session of a user (with --appid, in that app only)",
    )
    revoke_all.add_argument("--openid", required=True)
    actions.add_parser("purge", parents=[parent], help="delete expired sessions now")
    manage.set_defaults(handler=sessions)
