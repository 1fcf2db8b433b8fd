"""The PostfixAdmin database schema, as PostfixAdmin's own ``public/upgrade.php`` leaves it.

PostfixAdmin never ships a plain DDL file: its tables are whatever ``upgrade.php`` builds on an
empty database by running every ``upgrade_N`` / ``upgrade_N_pgsql`` / ``upgrade_N_mysql`` /
``upgrade_N_mysql_pgsql`` function in ascending N (CREATE TABLE, then decades of ALTERs). The
statements below reproduce the *final* result of that run, column order, types, NOT NULL,
defaults, character sets, collations, keys and constraint names included, for three releases:

* ``"3.3.16"``: the 3.3 line (tag ``postfixadmin-3.3.16``; Debian bookworm still packages 3.3.13),
  ``upgrade_1`` … ``upgrade_1847_mysql``. No ``mailbox.smtp_active``/``totp_secret``, no DKIM,
  TOTP or app-password tables.
* ``"4.0.5"``: tag ``postfixadmin-4.0.5``, ``upgrade_1`` … ``upgrade_1851_mysql``; adds
  ``upgrade_1848`` (DKIM tables), ``upgrade_1849`` (``totp_secret``, TOTP exceptions, app
  passwords), ``upgrade_1850`` (``mailbox.smtp_active``). Mailbox ``phone``/``email_other``/
  ``token``/``token_validity`` come from ``upgrade_1837``, ``password_expiry`` (mailbox and
  domain) from ``upgrade_1842``: every 4.0 database has them.
* ``"next"``: the development line after 4.0.5 (master at commit 65b10f72),
  ``upgrade_1852`` … ``upgrade_1856``: ``alias.description`` and ``alias_domain.description``
  (``upgrade_1854``), ``admin_preferences`` (``upgrade_1856``), two indexes, TOTP exception
  timestamps.

Each was checked against a database that the real ``upgrade.php`` of that release created on
PostgreSQL 15 and MariaDB 10.11 (``tests/realservers/data/postfixadmin_schemas.json``).

What a writer of these tables must know, dialect by dialect:

* MySQL/MariaDB (``db_query_parsed`` with ``{LATIN1}``/``{COLLATE}``): the tables are latin1 with
  the case-insensitive ``latin1_general_ci`` collation, so ``WHERE username = 'A@x'`` also finds
  ``a@x``, and an address outside latin1 cannot be stored; only free-text columns
  (``mailbox.name``, ``domain.description``, the contact and vacation text) are utf8mb4
  (``domain.description`` and the contact columns are 3-byte utf8 on 3.3.16).
  ``upgrade_373_mysql``, ``upgrade_1845`` and ``upgrade_1846_mysql`` redefine
  ``domain.description``/``transport`` and ``mailbox.name``/``password``/``maildir``/
  ``local_part`` as NOT NULL *without* a default: under MariaDB's default strict ``sql_mode``
  every INSERT must give them. ``created``/``modified`` default to 2000-01-01, not to now.
  There are no foreign keys on the mail tables, and booleans are ``tinyint(1)``.
* PostgreSQL (``upgrade_2_pgsql`` and later): ``varchar`` comparisons are case-sensitive, so
  addresses must be lower-cased by the writer. ``alias.domain`` and ``alias_domain`` reference
  ``domain``; ``upgrade_4_pgsql`` re-adds ``mailbox.domain`` as a *nullable* foreign key at the
  end of the table (hence the ``mailbox_domain_fkey1`` name); ``transport`` is nullable and
  ``created``/``modified`` default to now().
* Both: ``alias`` has no ``description`` before ``"next"``; ``config`` holds the schema
  version (``name = 'version'``) that ``upgrade.php`` compares with its functions.

Left out on purpose: PostgreSQL's Dovecot quota-dict triggers of ``upgrade_730_pgsql``
(``merge_quota``/``merge_quota2``), which change no column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Dialect = Literal["postgresql", "mysql"]
Release = Literal["3.3.16", "4.0.5", "next"]

RELEASES: tuple[Release, ...] = ("3.3.16", "4.0.5", "next")
DEFAULT_RELEASE: Release = "4.0.5"

SCHEMA_VERSIONS: Mapping[Release, int] = {"3.3.16": 1847, "4.0.5": 1851, "next": 1856}
"""The ``config.version`` value each release's ``upgrade.php`` ends with."""

TABLES: tuple[str, ...] = (
    "config", "domain", "admin", "alias", "domain_admins", "log", "mailbox", "vacation",
    "vacation_notification", "fetchmail", "alias_domain", "quota", "quota2", "dkim", "dkim_signing",
    "totp_exception_address", "mailbox_app_password", "admin_preferences",
)
"""Every table any release creates, in an order that satisfies the foreign keys."""


def schema_statements(dialect: Dialect, *, release: Release = DEFAULT_RELEASE) -> list[str]:
    """The statements that create PostfixAdmin's tables on an empty database, one per item.

    The tables are created unqualified, in the connection's current database (MySQL) or
    first schema of the search path (PostgreSQL); the last statement records the schema
    version in ``config`` as ``upgrade.php`` does.
    """
    if release not in SCHEMA_VERSIONS:
        raise ValueError(f"unknown PostfixAdmin release {release!r}; known: {', '.join(RELEASES)}")
    if dialect == "postgresql":
        statements = _postgresql(_Level(release))
    elif dialect == "mysql":
        statements = _mysql(_Level(release))
    else:
        raise ValueError(f"unknown SQL dialect {dialect!r}; known: postgresql, mysql")
    statements.append(f"INSERT INTO config (name, value) VALUES ('version', '{SCHEMA_VERSIONS[release]}')")
    return statements


def drop_statements(dialect: Dialect) -> list[str]:
    """Statements that remove every PostfixAdmin table (of any release) that exists."""
    tables = list(reversed(TABLES))
    if dialect == "postgresql":
        return [f"DROP TABLE IF EXISTS {', '.join(tables)} CASCADE"]
    if dialect == "mysql":
        return ["SET FOREIGN_KEY_CHECKS = 0", f"DROP TABLE IF EXISTS {', '.join(tables)}", "SET FOREIGN_KEY_CHECKS = 1"]
    raise ValueError(f"unknown SQL dialect {dialect!r}; known: postgresql, mysql")


class _Level:
    """Which upgrade functions a release has run."""

    def __init__(self, release: Release) -> None:
        self.version = SCHEMA_VERSIONS[release]

    def has(self, upgrade: int) -> bool:
        return self.version >= upgrade


def _lines(*parts: str) -> str:
    """Column lines of a CREATE TABLE, skipping the empty ones a release does not have."""
    return ",\n    ".join(part for part in parts if part)


# PostgreSQL: upgrade_2_pgsql creates the core tables, later functions ALTER them. A
# timestamp default of '2000-01-01' is taken in the session's time zone, as upgrade.php's is.

_PG_DATE = "timestamp with time zone DEFAULT '2000-01-01'"
_PG_NOW = "timestamp with time zone DEFAULT now()"
_PG_TEXT = "character varying(255) DEFAULT '' NOT NULL"


def _postgresql(level: _Level) -> list[str]:
    totp = level.has(1849)
    nxt = level.has(1854)
    statements = [
        """CREATE TABLE config (
    id SERIAL,
    name character varying(20) NOT NULL UNIQUE,
    value character varying(20) NOT NULL,
    PRIMARY KEY (id))""",
        f"""CREATE TABLE domain (
    domain character varying(255) NOT NULL,
    description {_PG_TEXT},
    aliases integer DEFAULT 0 NOT NULL,
    mailboxes integer DEFAULT 0 NOT NULL,
    maxquota bigint DEFAULT 0 NOT NULL,
    quota bigint DEFAULT 0 NOT NULL,
    transport character varying(255) DEFAULT NULL,
    backupmx boolean DEFAULT false NOT NULL,
    created {_PG_NOW},
    modified {_PG_NOW},
    active boolean DEFAULT true NOT NULL,
    password_expiry integer DEFAULT 0,
    CONSTRAINT domain_key PRIMARY KEY (domain))""",
        "CREATE INDEX domain_domain_active ON domain (domain, active)",
        "COMMENT ON TABLE domain IS 'Postfix Admin - Virtual Domains'",
        f"""CREATE TABLE admin (
    {_lines(
        "username character varying(255) NOT NULL",
        f"password {_PG_TEXT}",
        f"created {_PG_NOW}",
        f"modified {_PG_NOW}",
        "active boolean DEFAULT true NOT NULL",
        "superadmin boolean DEFAULT false NOT NULL",
        "phone character varying(30) DEFAULT '' NOT NULL",
        f"email_other {_PG_TEXT}",
        f"token {_PG_TEXT}",
        f"token_validity {_PG_DATE}",
        "totp_secret character varying(255) DEFAULT NULL" if totp else "",
        "CONSTRAINT admin_key PRIMARY KEY (username)",
    )})""",
        "COMMENT ON TABLE admin IS 'Postfix Admin - Virtual Admins'",
        f"""CREATE TABLE alias (
    {_lines(
        "address character varying(255) NOT NULL",
        "goto text NOT NULL",
        "domain character varying(255) NOT NULL REFERENCES domain (domain)",
        f"created {_PG_NOW}",
        f"modified {_PG_NOW}",
        "active boolean DEFAULT true NOT NULL",
        f"description {_PG_TEXT}" if nxt else "",
        "CONSTRAINT alias_key PRIMARY KEY (address)",
    )})""",
        "CREATE INDEX alias_address_active ON alias (address, active)",
        "CREATE INDEX alias_domain_idx ON alias (domain)",
        "COMMENT ON TABLE alias IS 'Postfix Admin - Virtual Aliases'",
        f"""CREATE TABLE domain_admins (
    username character varying(255) NOT NULL,
    domain character varying(255) NOT NULL REFERENCES domain (domain),
    created {_PG_NOW},
    active boolean DEFAULT true NOT NULL,
    id SERIAL PRIMARY KEY)""",
        "COMMENT ON TABLE domain_admins IS 'Postfix Admin - Domain Admins'",
        f"""CREATE TABLE log (
    "timestamp" {_PG_NOW},
    username {_PG_TEXT},
    domain {_PG_TEXT},
    action {_PG_TEXT},
    data text DEFAULT '' NOT NULL,
    id SERIAL PRIMARY KEY)""",
        'CREATE INDEX log_domain_timestamp_idx ON log (domain, "timestamp")',
        "COMMENT ON TABLE log IS 'Postfix Admin - Log'",
        f"""CREATE TABLE mailbox (
    {_lines(
        "username character varying(255) NOT NULL",
        f"password {_PG_TEXT}",
        f"name {_PG_TEXT}",
        f"maildir {_PG_TEXT}",
        "quota bigint DEFAULT 0 NOT NULL",
        f"created {_PG_NOW}",
        f"modified {_PG_NOW}",
        "active boolean DEFAULT true NOT NULL",
        "domain character varying(255) CONSTRAINT mailbox_domain_fkey1 REFERENCES domain (domain)",
        "local_part character varying(255) NOT NULL",
        "phone character varying(30) DEFAULT '' NOT NULL",
        f"email_other {_PG_TEXT}",
        f"token {_PG_TEXT}",
        f"token_validity {_PG_DATE}",
        f"password_expiry {_PG_DATE}",
        "totp_secret character varying(255) DEFAULT NULL" if totp else "",
        "smtp_active boolean DEFAULT true NOT NULL" if level.has(1850) else "",
        "CONSTRAINT mailbox_key PRIMARY KEY (username)",
    )})""",
        "CREATE INDEX mailbox_username_active ON mailbox (username, active)",
        "CREATE INDEX mailbox_domain_idx ON mailbox (domain)",
        "COMMENT ON TABLE mailbox IS 'Postfix Admin - Virtual Mailboxes'",
        f"""CREATE TABLE vacation (
    email character varying(255) PRIMARY KEY,
    subject character varying(255) NOT NULL,
    body text DEFAULT '' NOT NULL,
    created {_PG_NOW},
    active boolean DEFAULT true NOT NULL,
    domain character varying(255) CONSTRAINT vacation_domain_fkey1 REFERENCES domain (domain),
    modified {_PG_NOW},
    activefrom {_PG_DATE},
    activeuntil timestamp with time zone DEFAULT '2038-01-18',
    interval_time integer DEFAULT 0 NOT NULL)""",
        "CREATE INDEX vacation_email_active ON vacation (email, active)",
        """CREATE TABLE vacation_notification (
    on_vacation character varying(255) NOT NULL REFERENCES vacation (email) ON DELETE CASCADE,
    notified character varying(255) NOT NULL,
    notified_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT vacation_notification_pkey PRIMARY KEY (on_vacation, notified))""",
        f"""CREATE TABLE fetchmail (
    id SERIAL,
    mailbox {_PG_TEXT},
    src_server {_PG_TEXT},
    src_auth character varying(15) NOT NULL,
    src_user {_PG_TEXT},
    src_password {_PG_TEXT},
    src_folder {_PG_TEXT},
    poll_time integer DEFAULT 10 NOT NULL,
    fetchall boolean DEFAULT false NOT NULL,
    keep boolean DEFAULT false NOT NULL,
    protocol character varying(15) NOT NULL,
    extra_options text,
    returned_text text,
    mda {_PG_TEXT},
    date {_PG_NOW},
    usessl boolean DEFAULT false NOT NULL,
    sslcertck boolean DEFAULT false NOT NULL,
    sslcertpath character varying(255) DEFAULT '',
    sslfingerprint character varying(255) DEFAULT '',
    domain character varying(255) DEFAULT '',
    active boolean DEFAULT false NOT NULL,
    created {_PG_DATE},
    modified {_PG_NOW},
    src_port integer DEFAULT 0 NOT NULL,
    PRIMARY KEY (id),
    CHECK (src_auth IN ('password','kerberos_v5','kerberos','kerberos_v4','gssapi','cram-md5','otp','ntlm','msn','ssh','any')),
    CHECK (protocol IN ('POP3', 'IMAP', 'POP2', 'ETRN', 'AUTO')))""",  # noqa: E501
        # upgrade_344_pgsql burns the first id so that PHP's "if ($id)" never sees 0 or 1.
        "SELECT nextval('fetchmail_id_seq')",
        f"""CREATE TABLE alias_domain (
    {_lines(
        "alias_domain character varying(255) NOT NULL REFERENCES domain (domain) ON DELETE CASCADE",
        "target_domain character varying(255) NOT NULL REFERENCES domain (domain) ON DELETE CASCADE",
        f"created {_PG_NOW}",
        f"modified {_PG_NOW}",
        "active boolean DEFAULT true NOT NULL",
        f"description {_PG_TEXT}" if nxt else "",
        "PRIMARY KEY (alias_domain)",
    )})""",
        "CREATE INDEX alias_domain_active ON alias_domain (alias_domain, active)",
        "COMMENT ON TABLE alias_domain IS 'Postfix Admin - Domain Aliases'",
        """CREATE TABLE quota (
    username character varying(255) NOT NULL,
    path character varying(100) NOT NULL,
    current bigint DEFAULT 0 NOT NULL,
    PRIMARY KEY (username, path))""",
        """CREATE TABLE quota2 (
    username character varying(100) NOT NULL,
    bytes bigint DEFAULT 0 NOT NULL,
    messages integer DEFAULT 0 NOT NULL,
    PRIMARY KEY (username))""",
    ]
    if totp:
        statements += [
            f"""CREATE TABLE dkim (
    id SERIAL PRIMARY KEY,
    domain_name character varying(255) NOT NULL REFERENCES domain (domain) ON DELETE CASCADE,
    description character varying(255) DEFAULT '',
    selector character varying(63) DEFAULT 'default' NOT NULL,
    private_key text,
    public_key text,
    created {_PG_DATE},
    modified {_PG_DATE})""",
            "CREATE INDEX domain_desc_idx ON dkim (domain_name, description)",
            f"""CREATE TABLE dkim_signing (
    id SERIAL PRIMARY KEY,
    author {_PG_TEXT},
    dkim_id integer NOT NULL REFERENCES dkim (id) ON DELETE CASCADE,
    created {_PG_DATE},
    modified {_PG_DATE})""",
            "CREATE INDEX author_idx ON dkim_signing (author)",
            f"""CREATE TABLE totp_exception_address (
    {_lines(
        "id SERIAL PRIMARY KEY",
        "ip character varying(46) NOT NULL",
        "username character varying(255) DEFAULT NULL",
        "description character varying(255) DEFAULT NULL",
        f"created {_PG_NOW}" if nxt else "",
        f"modified {_PG_NOW}" if nxt else "",
    )})""",
            "CREATE UNIQUE INDEX ip_user ON totp_exception_address (ip, username)",
            """CREATE TABLE mailbox_app_password (
    id SERIAL PRIMARY KEY,
    username character varying(255) DEFAULT NULL,
    description character varying(255) DEFAULT NULL,
    password_hash character varying(255) DEFAULT NULL)""",
        ]
    if nxt:
        statements += [
            "CREATE INDEX idx_domadm_user_domain_active ON domain_admins (username, domain, active)",
            "CREATE INDEX idx_fetchmail_domain ON fetchmail (domain)",
            """CREATE TABLE admin_preferences (
    username character varying(255) DEFAULT '' NOT NULL,
    pref_key character varying(64) DEFAULT '' NOT NULL,
    pref_value character varying(2048) DEFAULT '' NOT NULL,
    PRIMARY KEY (username, pref_key))""",
        ]
    return statements


# MySQL/MariaDB: upgrade_5_mysql creates the tables, upgrade_473/1835/1846_mysql and others
# CHANGE/MODIFY their columns; the result is spelled out here column by column. Added columns
# come last: _db_add_field() honours its "AFTER col" only for database_type 'mysql', and
# PostfixAdmin's default (and PHP 7+'s only) MySQL driver is 'mysqli'.

_MY_LATIN1 = "ENGINE=InnoDB DEFAULT CHARSET=latin1 COLLATE=latin1_general_ci"
_MY_DATETIME = "datetime NOT NULL DEFAULT '2000-01-01 00:00:00'"
_MY_TIMESTAMP = "timestamp NOT NULL DEFAULT '2000-01-01 00:00:00'"
_MY_NOW = "timestamp NOT NULL DEFAULT current_timestamp()"


def _mysql(level: _Level) -> list[str]:
    totp = level.has(1849)
    nxt = level.has(1854)
    # {UTF-8} was "CHARACTER SET utf8" (utf8mb3) on the 3.3 line and utf8mb4 since 4.0.
    utf8 = "CHARACTER SET utf8mb4" if totp else "CHARACTER SET utf8"
    contact_columns = (
        f"`phone` varchar(30) {utf8} NOT NULL DEFAULT ''",
        f"`email_other` varchar(255) {utf8} NOT NULL DEFAULT ''",
        f"`token` varchar(255) {utf8} NOT NULL DEFAULT ''",
        f"`token_validity` {_MY_DATETIME}",
    )
    statements = [
        """CREATE TABLE `config` (
    `id` int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `name` varchar(20) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL DEFAULT '',
    `value` varchar(20) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL DEFAULT '',
    UNIQUE KEY `name` (`name`)
) COMMENT='PostfixAdmin settings'""",
        f"""CREATE TABLE `admin` (
    {_lines(
        "`username` varchar(255) NOT NULL",
        "`password` varchar(255) NOT NULL",
        f"`created` {_MY_DATETIME}",
        f"`modified` {_MY_DATETIME}",
        "`active` tinyint(1) NOT NULL DEFAULT 1",
        "`superadmin` tinyint(1) NOT NULL DEFAULT 0",
        *contact_columns,
        "`totp_secret` varchar(255) CHARACTER SET utf8mb4 DEFAULT NULL" if totp else "",
        "PRIMARY KEY (`username`)",
    )}
) {_MY_LATIN1} COMMENT='Postfix Admin - Virtual Admins'""",
        f"""CREATE TABLE `alias` (
    {_lines(
        "`address` varchar(255) NOT NULL",
        "`goto` text NOT NULL",
        "`domain` varchar(255) NOT NULL",
        f"`created` {_MY_DATETIME}",
        f"`modified` {_MY_DATETIME}",
        "`active` tinyint(1) NOT NULL DEFAULT 1",
        "`description` varchar(255) CHARACTER SET utf8mb4 NOT NULL DEFAULT ''" if nxt else "",
        "PRIMARY KEY (`address`)",
        "KEY `domain` (`domain`)",
    )}
) {_MY_LATIN1} COMMENT='Postfix Admin - Virtual Aliases'""",
        f"""CREATE TABLE `domain` (
    `domain` varchar(255) NOT NULL,
    `description` varchar(255) {utf8} NOT NULL,
    `aliases` int(10) NOT NULL DEFAULT 0,
    `mailboxes` int(10) NOT NULL DEFAULT 0,
    `maxquota` bigint(20) NOT NULL DEFAULT 0,
    `quota` bigint(20) NOT NULL DEFAULT 0,
    `transport` varchar(255) NOT NULL,
    `backupmx` tinyint(1) NOT NULL DEFAULT 0,
    `created` {_MY_DATETIME},
    `modified` {_MY_DATETIME},
    `active` tinyint(1) NOT NULL DEFAULT 1,
    `password_expiry` int(11) DEFAULT 0,
    PRIMARY KEY (`domain`)
) {_MY_LATIN1} COMMENT='Postfix Admin - Virtual Domains'""",
        f"""CREATE TABLE `domain_admins` (
    {_lines(
        "`username` varchar(255) NOT NULL",
        "`domain` varchar(255) NOT NULL",
        f"`created` {_MY_DATETIME}",
        "`active` tinyint(1) NOT NULL DEFAULT 1",
        "`id` int(11) NOT NULL AUTO_INCREMENT",
        "PRIMARY KEY (`id`)",
        "KEY `username` (`username`)",
        "KEY `idx_domadm_user_domain_active` (`username`, `domain`, `active`)" if nxt else "",
    )}
) {_MY_LATIN1} COMMENT='Postfix Admin - Domain Admins'""",
        f"""CREATE TABLE `log` (
    `timestamp` {_MY_DATETIME},
    `username` varchar(255) NOT NULL,
    `domain` varchar(255) NOT NULL,
    `action` varchar(255) NOT NULL,
    `data` text NOT NULL,
    `id` int(11) NOT NULL AUTO_INCREMENT,
    PRIMARY KEY (`id`),
    KEY `timestamp` (`timestamp`),
    KEY `domain_timestamp` (`domain`, `timestamp`)
) {_MY_LATIN1} COMMENT='Postfix Admin - Log'""",
        f"""CREATE TABLE `mailbox` (
    {_lines(
        "`username` varchar(255) NOT NULL",
        "`password` varchar(255) NOT NULL",
        "`name` varchar(255) CHARACTER SET utf8mb4 NOT NULL",
        "`maildir` varchar(255) NOT NULL",
        "`quota` bigint(20) NOT NULL DEFAULT 0",
        "`local_part` varchar(255) NOT NULL",
        "`domain` varchar(255) NOT NULL",
        f"`created` {_MY_DATETIME}",
        f"`modified` {_MY_DATETIME}",
        "`active` tinyint(1) NOT NULL DEFAULT 1",
        *contact_columns,
        f"`password_expiry` {_MY_DATETIME}",
        "`totp_secret` varchar(255) CHARACTER SET utf8mb4 DEFAULT NULL" if totp else "",
        "`smtp_active` tinyint(1) NOT NULL DEFAULT 1" if level.has(1850) else "",
        "PRIMARY KEY (`username`)",
        "KEY `domain` (`domain`)",
    )}
) {_MY_LATIN1} COMMENT='Postfix Admin - Virtual Mailboxes'""",
        f"""CREATE TABLE `vacation` (
    `email` varchar(255) NOT NULL,
    `subject` varchar(255) CHARACTER SET utf8mb4 NOT NULL,
    `body` text CHARACTER SET utf8mb4 NOT NULL,
    `cache` text NOT NULL,
    `domain` varchar(255) NOT NULL,
    `created` {_MY_DATETIME},
    `active` tinyint(1) NOT NULL DEFAULT 1,
    `modified` {_MY_NOW},
    `activefrom` {_MY_TIMESTAMP},
    `activeuntil` timestamp NOT NULL DEFAULT '2038-01-18 00:00:00',
    `interval_time` int(11) NOT NULL DEFAULT 0,
    PRIMARY KEY (`email`),
    KEY `email` (`email`)
) {_MY_LATIN1} COMMENT='Postfix Admin - Virtual Vacation'""",
        """CREATE TABLE `vacation_notification` (
    `on_vacation` varchar(255) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL,
    `notified` varchar(255) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL DEFAULT '',
    `notified_at` timestamp NOT NULL DEFAULT current_timestamp(),
    PRIMARY KEY (`on_vacation`, `notified`),
    CONSTRAINT `vacation_notification_pkey` FOREIGN KEY (`on_vacation`) REFERENCES `vacation` (`email`)
        ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8 COMMENT='Postfix Admin - Virtual Vacation Notifications'""",
        f"""CREATE TABLE `fetchmail` (
    {_lines(
        "`id` int(11) unsigned NOT NULL AUTO_INCREMENT",
        "`mailbox` varchar(255) NOT NULL",
        "`src_server` varchar(255) NOT NULL",
        "`src_auth` enum('password','kerberos_v5','kerberos','kerberos_v4','gssapi','cram-md5','otp','ntlm','msn',"
        f"'ssh','any') {'' if totp else 'CHARACTER SET utf8mb4 '}DEFAULT NULL",
        "`src_user` varchar(255) NOT NULL",
        "`src_password` varchar(255) NOT NULL",
        "`src_folder` varchar(255) NOT NULL",
        "`poll_time` int(11) unsigned NOT NULL DEFAULT 10",
        "`fetchall` tinyint(1) unsigned NOT NULL DEFAULT 0",
        "`keep` tinyint(1) unsigned NOT NULL DEFAULT 0",
        f"`protocol` enum('POP3','IMAP','POP2','ETRN','AUTO') {'' if totp else 'CHARACTER SET utf8mb4 '}DEFAULT NULL",
        "`usessl` tinyint(1) unsigned NOT NULL DEFAULT 0",
        "`extra_options` text DEFAULT NULL",
        "`returned_text` text DEFAULT NULL",
        "`mda` varchar(255) DEFAULT NULL" if totp else "`mda` varchar(255) NOT NULL",
        f"`date` {_MY_TIMESTAMP}",
        "`sslcertck` tinyint(1) NOT NULL DEFAULT 0",
        f"`sslcertpath` varchar(255) {utf8} DEFAULT ''",
        "`sslfingerprint` varchar(255) DEFAULT ''",
        "`domain` varchar(255) DEFAULT ''",
        "`active` tinyint(1) NOT NULL DEFAULT 0",
        f"`created` {_MY_TIMESTAMP}",
        f"`modified` {_MY_NOW}",
        "`src_port` int(11) NOT NULL DEFAULT 0",
        "PRIMARY KEY (`id`)",
        "KEY `idx_fetchmail_domain` (`domain`)" if nxt else "",
    )}
) {_MY_LATIN1}""",
        f"""CREATE TABLE `alias_domain` (
    {_lines(
        "`alias_domain` varchar(255) NOT NULL DEFAULT ''",
        "`target_domain` varchar(255) NOT NULL DEFAULT ''",
        f"`created` {_MY_DATETIME}",
        f"`modified` {_MY_DATETIME}",
        "`active` tinyint(1) NOT NULL DEFAULT 1",
        "`description` varchar(255) CHARACTER SET utf8mb4 NOT NULL DEFAULT ''" if nxt else "",
        "PRIMARY KEY (`alias_domain`)",
        "KEY `active` (`active`)",
        "KEY `target_domain` (`target_domain`)",
    )}
) {_MY_LATIN1} COMMENT='Postfix Admin - Domain Aliases'""",
        f"""CREATE TABLE `quota` (
    `username` varchar(255) NOT NULL,
    `path` varchar(100) NOT NULL,
    `current` bigint(20) NOT NULL DEFAULT 0,
    PRIMARY KEY (`username`, `path`)
) {_MY_LATIN1}""",
        # The 3.3 line's upgrade_1847_mysql widened quota2.username and left the table utf8mb4.
        f"""CREATE TABLE `quota2` (
    `username` varchar(100) NOT NULL,
    `bytes` bigint(20) NOT NULL DEFAULT 0,
    `messages` int(11) NOT NULL DEFAULT 0,
    PRIMARY KEY (`username`)
) {_MY_LATIN1}"""
        if totp
        else """CREATE TABLE `quota2` (
    `username` varchar(255) CHARACTER SET latin1 COLLATE latin1_general_ci NOT NULL,
    `bytes` bigint(20) NOT NULL DEFAULT 0,
    `messages` int(11) NOT NULL DEFAULT 0,
    PRIMARY KEY (`username`)
)""",
    ]
    if totp:
        statements += [
            f"""CREATE TABLE `dkim` (
    `id` int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `domain_name` varchar(255) NOT NULL,
    `description` varchar(255) DEFAULT '',
    `selector` varchar(63) NOT NULL DEFAULT 'default',
    `private_key` text,
    `public_key` text,
    `created` {_MY_DATETIME},
    `modified` {_MY_DATETIME},
    INDEX (`domain_name`, `description`),
    FOREIGN KEY (`domain_name`) REFERENCES `domain` (`domain`) ON DELETE CASCADE
) {_MY_LATIN1} COMMENT='Postfix Admin - OpenDKIM Key Table'""",
            f"""CREATE TABLE `dkim_signing` (
    `id` int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `author` varchar(255) NOT NULL DEFAULT '',
    `dkim_id` integer NOT NULL,
    `created` {_MY_DATETIME},
    `modified` {_MY_DATETIME},
    INDEX (`author`),
    FOREIGN KEY (`dkim_id`) REFERENCES `dkim` (`id`) ON DELETE CASCADE
) {_MY_LATIN1} COMMENT='Postfix Admin - OpenDKIM Signing Table'""",
            f"""CREATE TABLE `totp_exception_address` (
    {_lines(
        "`id` int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY",
        "`ip` varchar(46) NOT NULL",
        "`username` varchar(255) DEFAULT NULL",
        "`description` varchar(255) DEFAULT NULL",
        f"`created` {_MY_NOW}" if nxt else "",
        f"`modified` {_MY_NOW}" if nxt else "",
        "UNIQUE KEY `ip_user` (`ip`, `username`)",
    )}
) ENGINE=InnoDB""",
            """CREATE TABLE `mailbox_app_password` (
    `id` int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY,
    `username` varchar(255) DEFAULT NULL,
    `description` varchar(255) DEFAULT NULL,
    `password_hash` varchar(255) DEFAULT NULL
) ENGINE=InnoDB""",
        ]
    if nxt:
        statements.append(
            """CREATE TABLE `admin_preferences` (
    `username` varchar(255) NOT NULL DEFAULT '',
    `pref_key` varchar(64) NOT NULL DEFAULT '',
    `pref_value` varchar(2048) NOT NULL DEFAULT '',
    PRIMARY KEY (`username`, `pref_key`)
) CHARACTER SET latin1 COLLATE latin1_general_ci"""
        )
    return statements
