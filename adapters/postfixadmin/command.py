"""``scim-gateway postfixadmin-schema``: PostfixAdmin's tables for a new installation (and for tests).

The gateway itself never creates or alters the schema. This command builds it on an empty
database, exactly as PostfixAdmin's ``upgrade.php`` of the chosen release leaves it
(``schema.py``), so that PostfixAdmin can later be installed on top and finds an up-to-date
database. It refuses a database that already holds any PostfixAdmin table.

With ``--grant-to USER`` it also grants the gateway's own login the least it needs; with
``--print`` it only prints the statements.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

from adapters.postfixadmin.schema import DEFAULT_RELEASE, RELEASES, TABLES, Dialect, schema_statements

if TYPE_CHECKING:
    from adapters.postfixadmin.db import Target

DSN_ENV = "SCIM_GATEWAY_POSTFIXADMIN_DSN"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def grant_statements(dialect: Dialect, user: str, database: str, *, create_domains: bool = False) -> list[str]:
    """The least the gateway's login needs: rows of mailbox and alias, reading (and adding) domains."""
    domain_rights = "SELECT, INSERT" if create_domains else "SELECT"
    if dialect == "postgresql":
        return [f"GRANT SELECT, INSERT, UPDATE, DELETE ON mailbox, alias TO {user}",
                f"GRANT {domain_rights} ON domain TO {user}"]
    account = user if "@" in user else f"'{user}'@'%'"
    return [f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.mailbox TO {account}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.alias TO {account}",
            f"GRANT {domain_rights} ON `{database}`.domain TO {account}"]


def add_parser(sub: Any) -> None:
    """The ``postfixadmin-schema`` subcommand of ``scim-gateway``."""
    parser = sub.add_parser(
        "postfixadmin-schema", help="create PostfixAdmin's tables in an empty database (new installations)",
        description="Creates the tables PostfixAdmin's upgrade.php of RELEASE builds, in an empty database; refuses "
                    "a database that already has any of them. Exit status: 0 done, 1 the database failed, "
                    "2 refused or wrong arguments.")
    parser.add_argument("--dsn", default=None, help=f"postgresql://… or mysql://… of a login that may create tables "
                                                     f"(default: ${DSN_ENV})")
    parser.add_argument("--release", choices=RELEASES, default=DEFAULT_RELEASE,
                        help=f"PostfixAdmin release whose schema to build (default {DEFAULT_RELEASE})")
    parser.add_argument("--grant-to", default=None, metavar="USER",
                        help="also grant this (existing) login what the gateway needs")
    parser.add_argument("--create-domains", action="store_true",
                        help="with --grant-to: let that login add domains (the backend's create_domains)")
    parser.add_argument("--print", action="store_true", dest="print_only",
                        help="print the statements instead of running them")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # The database drivers load only when the command runs, not with every scim-gateway command.
    from adapters.base import BackendError
    from adapters.postfixadmin.db import Target

    dsn = args.dsn or os.environ.get(DSN_ENV)
    if not dsn:
        print(f"postfixadmin-schema: give --dsn or set {DSN_ENV}", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = Target.from_dsn(dsn)
    except ValueError as exc:
        print(f"postfixadmin-schema: {exc}", file=sys.stderr)
        return EXIT_USAGE
    statements = schema_statements(target.dialect, release=args.release)
    if args.grant_to:
        statements += grant_statements(target.dialect, args.grant_to, target.database,
                                       create_domains=args.create_domains)
    if args.print_only:
        print(";\n\n".join(statements) + ";")
        return EXIT_OK
    try:
        existing = asyncio.run(create_schema(target, statements))
    except BackendError as exc:
        print(f"postfixadmin-schema: {target.location}: {exc.detail}", file=sys.stderr)
        return EXIT_FAILED
    if existing:
        print(f"postfixadmin-schema: {target.location} already has PostfixAdmin tables ({', '.join(existing)}); "
              "nothing changed (the schema of an existing installation is PostfixAdmin's own business)",
              file=sys.stderr)
        return EXIT_USAGE
    print(f"postfixadmin-schema: created PostfixAdmin {args.release} tables in {target.location}")
    return EXIT_OK


async def create_schema(target: Target, statements: list[str]) -> list[str]:
    """Run ``statements`` unless a PostfixAdmin table exists; the existing tables (nothing done) otherwise."""
    from adapters.postfixadmin.db import Database, Session
    from adapters.retry import RetryPolicy

    db = Database(target, pool_size=1, policy=RetryPolicy(max_attempts=1, attempt_timeout=60.0, deadline=60.0))
    where = "current_schema()" if target.dialect == "postgresql" else "DATABASE()"
    names = ", ".join(f"'{t}'" for t in TABLES)
    probe = f"SELECT table_name AS name FROM information_schema.tables WHERE table_schema = {where} " \
            f"AND table_name IN ({names})"

    async def work(session: Session) -> list[str]:
        existing = sorted(str(r["name"]) for r in await session.fetch(probe))
        if existing:
            return existing
        for statement in statements:
            await session.execute(statement)
        return []

    try:
        # PostgreSQL builds it all or nothing; MariaDB commits each CREATE TABLE on its own.
        return await db.transaction(work)
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scim-gateway")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["postfixadmin-schema", *(argv or [])])
    result: int = args.run(args)
    return result

