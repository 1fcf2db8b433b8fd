"""The SQL the adapter sends, as PostfixAdmin's own handlers write the rows.

Every INSERT names each NOT NULL column (MariaDB's strict mode has no defaults for several)
and sets ``created``/``modified`` itself; ``transport`` of a new domain is ``'virtual'``.
Only these columns are read or written: the extra ones of newer releases keep their values
(a rename is an UPDATE of the key, never a delete and insert).

Writes that must travel in one round trip come in two spellings (see ``db.Database.atomic``):
one PostgreSQL statement with data-modifying CTEs, or MariaDB statements run in one
transaction. Parameters are ``%s`` throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.postfixadmin.db import Statement

MAILBOX_COLUMNS = "username, name, active"
DOMAIN_DESCRIPTION = "added by scim-gateway"

USABLE_DOMAIN = "active = TRUE AND backupmx = FALSE"


# --- reads --------------------------------------------------------------------------------

GET_MAILBOX = f"SELECT {MAILBOX_COLUMNS} FROM mailbox WHERE username = %s"
LOCK_MAILBOX = f"SELECT {MAILBOX_COLUMNS}, maildir FROM mailbox WHERE username = %s FOR UPDATE"
DOMAIN_STATE = "SELECT active, backupmx FROM domain WHERE domain = %s"
MAILDIR_TAKEN = "SELECT username FROM mailbox WHERE maildir = %s"
ADDRESS_TAKEN = ("SELECT 'mailbox' AS kind FROM mailbox WHERE username = %s"
                 " UNION ALL SELECT 'alias' AS kind FROM alias WHERE address = %s")
MAILBOXES_AMONG = "SELECT username FROM mailbox WHERE username IN ({marks})"
GET_LIST = ("SELECT address, goto FROM alias WHERE address IN ({marks})"
            " AND NOT EXISTS (SELECT 1 FROM mailbox WHERE username = alias.address)")
LOCK_LIST = ("SELECT address, goto FROM alias WHERE address = %s"
             " AND NOT EXISTS (SELECT 1 FROM mailbox WHERE username = alias.address) FOR UPDATE")
LOCK_GOTO_CONTAINING = "SELECT address, goto FROM alias WHERE lower(goto) LIKE %s FOR UPDATE"
COUNT_LISTS = ("SELECT count(*) AS total FROM alias WHERE domain = %s AND address LIKE %s"
               " AND NOT EXISTS (SELECT 1 FROM mailbox WHERE username = alias.address)")
PAGE_LISTS = ("SELECT address, goto, count(*) OVER () AS total FROM alias WHERE domain = %s AND address LIKE %s"
              " AND NOT EXISTS (SELECT 1 FROM mailbox WHERE username = alias.address)"
              " ORDER BY address LIMIT %s OFFSET %s")


def marks(count: int) -> str:
    return ", ".join(["%s"] * count)


# --- writes in one transaction -----------------------------------------------------------------

SET_GOTO = "UPDATE alias SET goto = %s, modified = NOW() WHERE address = %s"
MOVE_MAILBOX = ("UPDATE mailbox SET username = %s, local_part = %s, domain = %s, modified = NOW()"
                " WHERE username = %s")
MOVE_ALIAS = "UPDATE alias SET address = %s, domain = %s, modified = NOW() WHERE address = %s"
DELETE_MAILBOX = "DELETE FROM mailbox WHERE username = %s"
DELETE_ALIAS = "DELETE FROM alias WHERE address = %s"
DELETE_LIST = "DELETE FROM alias WHERE address = %s AND NOT EXISTS (SELECT 1 FROM mailbox WHERE username = %s)"
INSERT_DOMAIN_IF_ABSENT = (
    "INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport, backupmx,"
    " created, modified, active) SELECT %s, %s, 0, 0, 0, 0, 'virtual', FALSE, NOW(), NOW(), TRUE"
    " FROM (SELECT 1 AS one) AS single WHERE NOT EXISTS (SELECT 1 FROM domain WHERE domain = %s)"
)


def insert_domain(domain: str) -> Statement:
    return INSERT_DOMAIN_IF_ABSENT, (domain, DOMAIN_DESCRIPTION, domain)


# --- writes in one round trip -------------------------------------------------------------------


def create_mailbox(*, address: str, local_part: str, domain: str, password: str, name: str, maildir: str,
                   active: bool, create_domain: bool) -> tuple[Statement, list[Statement]]:
    """The mailbox and its self-alias (``address = goto = username``), in a usable domain, only if no
    other mailbox already uses ``maildir``; (and the domain first, when allowed). Returns the new row,
    or nothing when the domain or the maildir stopped it."""
    pg_domain = (
        "nd AS (INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport,"
        " backupmx, created, modified, active) VALUES (%s, %s, 0, 0, 0, 0, 'virtual', FALSE, NOW(), NOW(), TRUE)"
        " ON CONFLICT (domain) DO NOTHING RETURNING domain),"
        f" d AS (SELECT domain FROM domain WHERE domain = %s AND {USABLE_DOMAIN} UNION ALL SELECT domain FROM nd)"
        if create_domain else
        f"d AS (SELECT domain FROM domain WHERE domain = %s AND {USABLE_DOMAIN})"
    )
    domain_args: tuple[Any, ...] = (domain, DOMAIN_DESCRIPTION, domain) if create_domain else (domain,)
    postgresql = (
        f"WITH {pg_domain},"
        " m AS (INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, created,"
        " modified, active) SELECT %s, %s, %s, %s, 0, %s, d.domain, NOW(), NOW(), %s FROM d"
        " WHERE NOT EXISTS (SELECT 1 FROM mailbox WHERE maildir = %s) RETURNING username, name, active),"
        " a AS (INSERT INTO alias (address, goto, domain, created, modified, active)"
        " SELECT username, username, %s, NOW(), NOW(), active FROM m RETURNING address)"
        f" SELECT {MAILBOX_COLUMNS} FROM m",
        (*domain_args, address, password, name, maildir, local_part, active, maildir, domain),
    )
    mysql: list[Statement] = [insert_domain(domain)] if create_domain else []
    mysql += [
        ("INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, created, modified,"
         " active) SELECT %s, %s, %s, %s, 0, %s, domain, NOW(), NOW(), %s FROM domain"
         f" WHERE domain = %s AND {USABLE_DOMAIN} AND NOT EXISTS (SELECT 1 FROM mailbox WHERE maildir = %s)",
         (address, password, name, maildir, local_part, active, domain, maildir)),
        ("SELECT ROW_COUNT() AS created", ()),
        ("INSERT INTO alias (address, goto, domain, created, modified, active)"
         " SELECT username, username, domain, NOW(), NOW(), active FROM mailbox WHERE username = %s",
         (address,)),
    ]
    return postgresql, mysql


def update_mailbox(address: str, fields: dict[str, Any]) -> tuple[Statement, list[Statement]]:
    """Set ``fields`` (name, password, active) of a mailbox; ``active`` also on its self-alias.
    Returns the row as it is afterwards (nothing when the mailbox does not exist)."""
    sets = ", ".join(f"{column} = %s" for column in fields)
    values = tuple(fields.values())
    update = f"UPDATE mailbox SET {sets}, modified = NOW() WHERE username = %s"
    alias: Statement | None = None
    if "active" in fields:
        alias = ("UPDATE alias SET active = %s, modified = NOW() WHERE address = %s", (fields["active"], address))
    if alias is None:
        postgresql: Statement = (f"{update} RETURNING {MAILBOX_COLUMNS}", (*values, address))
    else:
        postgresql = (
            f"WITH m AS ({update} RETURNING {MAILBOX_COLUMNS}),"
            " a AS (UPDATE alias SET active = %s, modified = NOW() WHERE address = %s AND EXISTS (SELECT 1 FROM m))"
            f" SELECT {MAILBOX_COLUMNS} FROM m",
            (*values, address, *alias[1]),
        )
    mysql: list[Statement] = [(update, (*values, address))]
    if alias is not None:
        mysql.append(alias)
    mysql.append((GET_MAILBOX, (address,)))
    return postgresql, mysql


def create_list(address: str, domain: str, goto: str, *, create_domain: bool) -> tuple[Statement, list[Statement]]:
    """A distribution list's alias row in a usable domain (and the domain first, when allowed)."""
    if create_domain:
        pg_domain = (
            "nd AS (INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport,"
            " backupmx, created, modified, active) VALUES (%s, %s, 0, 0, 0, 0, 'virtual', FALSE, NOW(), NOW(),"
            f" TRUE) ON CONFLICT (domain) DO NOTHING RETURNING domain), d AS (SELECT domain FROM domain"
            f" WHERE domain = %s AND {USABLE_DOMAIN} UNION ALL SELECT domain FROM nd)"
        )
        domain_args: tuple[Any, ...] = (domain, DOMAIN_DESCRIPTION, domain)
    else:
        pg_domain = f"d AS (SELECT domain FROM domain WHERE domain = %s AND {USABLE_DOMAIN})"
        domain_args = (domain,)
    postgresql = (
        f"WITH {pg_domain}, a AS (INSERT INTO alias (address, goto, domain, created, modified, active)"
        " SELECT %s, %s, d.domain, NOW(), NOW(), TRUE FROM d RETURNING address) SELECT address FROM a",
        (*domain_args, address, goto),
    )
    mysql: list[Statement] = [insert_domain(domain)] if create_domain else []
    mysql += [
        ("INSERT INTO alias (address, goto, domain, created, modified, active)"
         f" SELECT %s, %s, domain, NOW(), NOW(), TRUE FROM domain WHERE domain = %s AND {USABLE_DOMAIN}",
         (address, goto, domain)),
        ("SELECT ROW_COUNT() AS created", ()),
    ]
    return postgresql, mysql


def created(results: Sequence[Sequence[dict[str, Any]]], dialect: str) -> bool:
    """Whether an atomic create (``create_mailbox``/``create_list``) wrote its row."""
    if dialect == "postgresql":
        return bool(results and results[0])
    for rows in results:
        if rows and "created" in rows[0]:
            return int(rows[0]["created"]) > 0
    return False
