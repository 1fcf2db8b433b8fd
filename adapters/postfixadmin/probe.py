"""Is this a PostfixAdmin database the gateway can work with? The tables and columns it needs.

The gateway never creates or alters these tables (``scim-gateway postfixadmin-schema`` does,
for a new installation); it only reads and writes the columns below and leaves the others
(quota, phone, TOTP secrets, … of newer releases) to PostfixAdmin.
"""

from __future__ import annotations

from adapters.postfixadmin.db import Database, SchemaProblem, Session

REQUIRED: dict[str, tuple[str, ...]] = {
    "domain": ("domain", "description", "aliases", "mailboxes", "maxquota", "quota", "transport", "backupmx",
               "created", "modified", "active"),
    "mailbox": ("username", "password", "name", "maildir", "quota", "local_part", "domain", "created", "modified",
                "active"),
    "alias": ("address", "goto", "domain", "created", "modified", "active"),
}
"""What PostfixAdmin 3.3 and later all have, and what the gateway reads or writes."""

_COLUMNS = {
    "postgresql": "SELECT table_name, column_name FROM information_schema.columns"
                  " WHERE table_schema = current_schema() AND table_name IN ('domain', 'mailbox', 'alias')",
    "mysql": "SELECT table_name AS table_name, column_name AS column_name FROM information_schema.columns"
             " WHERE table_schema = DATABASE() AND table_name IN ('domain', 'mailbox', 'alias')",
}


def missing_columns(found: set[tuple[str, str]]) -> dict[str, list[str]]:
    """Table → the required columns it lacks (every column of an absent table)."""
    missing: dict[str, list[str]] = {}
    for table, columns in REQUIRED.items():
        lacking = [c for c in columns if (table, c) not in found]
        if lacking:
            missing[table] = lacking
    return missing


def describe(missing: dict[str, list[str]], present_tables: set[str], database: str) -> str:
    parts = []
    for table, columns in missing.items():
        if table not in present_tables:
            parts.append(f"table {table} is missing")
        else:
            parts.append(f"table {table} lacks column{'s' if len(columns) > 1 else ''} {', '.join(columns)}")
    return (f"database {database} is not a PostfixAdmin database the gateway can use: {'; '.join(parts)}. Point the "
            "DSN at PostfixAdmin's database (release 3.3 or later, and a login that can read its tables), or create "
            "the schema for a new installation with: scim-gateway postfixadmin-schema --dsn DSN")


async def probe_schema(db: Database) -> None:
    """Raise SchemaProblem naming what is missing; Unavailable when the database does not answer."""

    async def work(session: Session) -> list[dict[str, object]]:
        return await session.fetch(_COLUMNS[db.dialect])

    rows = await db.read(work)
    found = {(str(r["table_name"]).lower(), str(r["column_name"]).lower()) for r in rows}
    missing = missing_columns(found)
    if missing:
        raise SchemaProblem(describe(missing, {t for t, _ in found}, db.target.database))
