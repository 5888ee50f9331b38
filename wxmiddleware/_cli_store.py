"""``wxmiddleware store init``: create (or print) the SQL session store's tables."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._cli_sessions import EXIT_STORE_UNAVAILABLE, EXIT_USAGE
from .errors import ConfigError, StoreUnavailable


def store_init(args: argparse.Namespace) -> int:
    """Create the SQL store's tables (or print their DDL) for ``--store URL``."""
    from .stores import sql_stores

    try:
        sql = sql_stores()
        store = sql.SQLStore.from_url(args.store, table_prefix=args.table_prefix)
    except ConfigError as exc:
        print(f"wxmiddleware store init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.print:
            print(";\n\n".join(store.ddl()) + ";")
            return 0
        store.check(create=True)
        print(f"store: the tables {args.table_prefix}* are ready in {store!r}", file=sys.stderr)
        return 0
    except ConfigError as exc:
        print(f"wxmiddleware store init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreUnavailable as exc:
        print(f"wxmiddleware store init: the store is unavailable ({exc.detail})", file=sys.stderr)
        return EXIT_STORE_UNAVAILABLE
    finally:
        store.close()


def add_store_parser(commands: Any) -> None:
    """Add ``store init`` to the subcommands ``commands``."""
    manage = commands.add_parser("store", help="set up a SQL session store")
    actions = manage.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = actions.add_parser(
        "init",
        help="create the SQL store's tables (PostgreSQL, MySQL/MariaDB)",
        description="Create the tables and indexes of the SQL session store if they do not"
        " exist, and check those that do; --print shows the DDL instead, for a DBA to apply."
        f" Exit codes: 0 done, {EXIT_USAGE} bad arguments or a schema that does not match,"
        f" {EXIT_STORE_UNAVAILABLE} database unavailable.",
    )
    init.add_argument("--store", required=True, help="postgresql://… or mysql://… URL")
    init.add_argument(
        "--table-prefix", default="wx_", help="prefix of the table names (default %(default)s)"
    )
    init.add_argument(
        "--print", action="store_true", help="print the DDL for the URL's database, connect to none"
    )
    manage.set_defaults(handler=store_init)
