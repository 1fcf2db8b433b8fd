"""What a database's PostfixAdmin tables look like, as comparable data.

``describe`` reads the catalog (columns with types, nullability, defaults, character sets and
collations; keys, constraints, indexes, table comments; the ``config`` rows) into plain lists
and dicts. ``data/postfixadmin_schemas.json`` holds that description for databases created by
PostfixAdmin's own ``public/upgrade.php`` (3.3.16, 4.0.5 and the development line, run on empty
PostgreSQL 15 and MariaDB 10.11 databases); the schema tests compare it with what
``adapters.postfixadmin.schema`` creates. To record a database made by upgrade.php:

    python -m tests.realservers.schema_snapshot RELEASE FLAVOUR DATABASE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

from tests.realservers.databases import Flavour, Login, fetch, server_login

REFERENCE_FILE = Path(__file__).parent / "data" / "postfixadmin_schemas.json"

_PG_COLUMNS = """
SELECT c.relname AS "table", a.attname AS "column", format_type(a.atttypid, a.atttypmod) AS "type",
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS "default"
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid AND c.relkind = 'r'
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum"""

_PG_CONSTRAINTS = """
SELECT c.relname AS "table", k.conname AS "name", pg_get_constraintdef(k.oid) AS "definition"
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
ORDER BY 1, 2"""

_PG_INDEXES = """
SELECT tablename AS "table", indexname AS "name", indexdef AS "definition"
FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1, 2"""

_PG_COMMENTS = """
SELECT c.relname AS "table", obj_description(c.oid, 'pg_class') AS "comment"
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
WHERE c.relkind = 'r' ORDER BY 1"""

_MY_TABLES = """
SELECT TABLE_NAME AS `table`, ENGINE AS `engine`, TABLE_COLLATION AS `collation`, TABLE_COMMENT AS `comment`
FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1"""

_MY_COLUMNS = """
SELECT TABLE_NAME AS `table`, COLUMN_NAME AS `column`, COLUMN_TYPE AS `type`, IS_NULLABLE AS `nullable`,
       COLUMN_DEFAULT AS `default`, CHARACTER_SET_NAME AS `charset`, COLLATION_NAME AS `collation`,
       EXTRA AS `extra`
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"""

_MY_INDEXES = """
SELECT TABLE_NAME AS `table`, INDEX_NAME AS `name`, NON_UNIQUE AS `non_unique`,
       GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) AS `columns`
FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE ORDER BY 1, 2"""

_MY_FOREIGN_KEYS = """
SELECT k.TABLE_NAME AS `table`, k.CONSTRAINT_NAME AS `name`,
       GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION) AS `columns`,
       k.REFERENCED_TABLE_NAME AS `references`,
       GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION) AS `referenced_columns`,
       r.DELETE_RULE AS `on_delete`
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.REFERENTIAL_CONSTRAINTS r
  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL
GROUP BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.REFERENCED_TABLE_NAME, r.DELETE_RULE ORDER BY 1, 2"""


def _rows(login: Login, sql: str) -> list[dict[str, Any]]:
    return [{key: _plain(value) for key, value in row.items()} for row in fetch(login, sql)]


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, bool)) else str(value)


def describe(login: Login) -> dict[str, Any]:
    """The tables of ``login``'s database (PostgreSQL: its current schema) as JSON-ready data."""
    config = {row["name"]: row["value"] for row in fetch(login, "SELECT name, value FROM config")}
    if login.flavour == "postgresql":
        return {
            "columns": _rows(login, _PG_COLUMNS),
            "constraints": _rows(login, _PG_CONSTRAINTS),
            "indexes": _rows(login, _PG_INDEXES),
            "comments": _rows(login, _PG_COMMENTS),
            "config": config,
        }
    return {
        "tables": _rows(login, _MY_TABLES),
        "columns": _rows(login, _MY_COLUMNS),
        "indexes": _rows(login, _MY_INDEXES),
        "foreign_keys": _rows(login, _MY_FOREIGN_KEYS),
        "config": config,
    }


def reference(release: str, flavour: Flavour) -> dict[str, Any]:
    """The recorded description of the database ``release``'s upgrade.php created on ``flavour``."""
    recorded = json.loads(REFERENCE_FILE.read_text())
    return cast(dict[str, Any], recorded[f"{release}/{flavour}"])


def _record(release: str, flavour: Flavour, database: str) -> None:
    recorded = json.loads(REFERENCE_FILE.read_text()) if REFERENCE_FILE.exists() else {}
    recorded[f"{release}/{flavour}"] = describe(server_login(flavour).to(database=database))
    REFERENCE_FILE.parent.mkdir(exist_ok=True)
    REFERENCE_FILE.write_text(_compact_json(recorded))


def _compact_json(recorded: dict[str, dict[str, Any]]) -> str:
    """One catalog row per line, so that a change to the reference reads as a small diff."""
    lines = ["{"]
    for i, (key, description) in enumerate(sorted(recorded.items())):
        lines.append(f" {json.dumps(key)}: {{")
        for j, (part, value) in enumerate(sorted(description.items())):
            comma = "," if j < len(description) - 1 else ""
            if isinstance(value, list):
                rows = [f"   {json.dumps(row, sort_keys=True)}" for row in value]
                lines.append(f"  {json.dumps(part)}: [\n" + ",\n".join(rows) + f"\n  ]{comma}")
            else:
                lines.append(f"  {json.dumps(part)}: {json.dumps(value, sort_keys=True)}{comma}")
        lines.append(" }" + ("," if i < len(recorded) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    _release, _flavour, _database = sys.argv[1:4]
    if _flavour not in ("postgresql", "mariadb"):
        raise SystemExit(f"flavour must be postgresql or mariadb, not {_flavour!r}")
    _record(_release, cast(Flavour, _flavour), _database)
