"""A throwaway PostfixAdmin mail platform: real Postfix and Dovecot reading a PostfixAdmin database.

``running_mailstack`` creates a database with a unique name on the local PostgreSQL or MariaDB
server, builds PostfixAdmin's schema in it (``adapters.postfixadmin.schema``), adds active
domains and two least-privilege logins (a SELECT-only one for the mail servers, a read/write
one for the gateway), writes Dovecot and Postfix configurations into a temporary directory and
starts both on 127.0.0.1 at free ports:

* Dovecot (``dovecot -F``): IMAP, LMTP on a unix socket, SQL passdb/userdb with PostfixAdmin's
  documented queries (DOCUMENTS/DOVECOT.txt), ``SHA512-CRYPT`` as the default scheme (what
  PostfixAdmin's default ``php_crypt`` writes), the failed-login penalty switched off;
* Postfix (``postfix start-fg``): smtpd only, the virtual domain/mailbox/alias maps of
  PostfixAdmin's DOCUMENTS/POSTFIX_CONF.txt (alias domains included), delivery to Dovecot over
  LMTP, anything else discarded and relaying refused, so no mail can leave the machine.

Everything is stopped by PID and the database and logins dropped when the context ends.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import json
import os
import pwd
import shutil
import smtplib
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from adapters.postfixadmin.schema import DEFAULT_RELEASE, Release, drop_statements, schema_statements
from tests.realservers.databases import (
    DIALECTS,
    Flavour,
    Login,
    execute,
    execute_all,
    fetch,
    server_login,
    unique_name,
)
from tests.realservers.support import apt_install, free_port, stop_pid, stop_process, unavailable, wait_for_port

PACKAGES = [
    "dovecot-core", "dovecot-imapd", "dovecot-lmtpd", "dovecot-pgsql", "dovecot-mysql",
    "postfix", "postfix-pgsql", "postfix-mysql",
]
DEBCONF = {"postfix postfix/main_mailer_type": "select No configuration"}
VMAIL_ID = 5000
DEFAULT_DOMAINS = ("example.com", "example.org")
SENDER = "sender@partner.invalid"
START_TIMEOUT_S = 30.0
SOCKET_TIMEOUT_S = 10.0


class MailRefused(Exception):
    """Postfix refused a recipient (or the message) with an SMTP error."""

    def __init__(self, recipient: str, code: int, message: str) -> None:
        super().__init__(f"{recipient}: {code} {message}")
        self.recipient = recipient
        self.code = code
        self.message = message


@dataclass
class MailStack:
    """A running Postfix + Dovecot on one PostfixAdmin database, and what tests need from them."""

    flavour: Flavour
    release: Release
    database: str
    domains: tuple[str, ...]
    admin: Login
    """Owner of the database: for test set-up and checks."""
    writer: Login
    """SELECT/INSERT/UPDATE/DELETE on every table: what the gateway gets."""
    reader: Login
    """SELECT only: what Postfix and Dovecot use."""
    smtp_port: int
    imap_port: int
    workdir: Path

    @property
    def dsn(self) -> str:
        """The gateway's DSN (``postgresql://…`` or ``mysql://…``), with rights to write rows only."""
        return self.writer.dsn

    # -- database ---------------------------------------------------------------------------

    def execute(self, sql: str, *args: Any) -> None:
        """Run one statement as the database's owner; parameters are ``%s`` in either flavour."""
        execute(self.admin, sql, *args)

    def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return fetch(self.admin, sql, *args)

    def transaction(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Run ``(sql, args)`` statements in one transaction, as PostfixAdmin writes a mailbox and its alias."""
        execute_all(self.admin, statements, transaction=True)

    def reset(self, release: Release | None = None) -> None:
        """Drop every PostfixAdmin table and start again from an empty schema (another release if asked)."""
        self.release = release or self.release
        _create_schema(self.admin, self.reader, self.writer, self.release, self.domains)

    def unique_address(self, local_prefix: str = "user", domain: str | None = None) -> str:
        return f"{local_prefix}-{uuid.uuid4().hex[:10]}@{domain or self.domains[0]}"

    # -- SMTP ---------------------------------------------------------------------------------

    def _smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP(
            "127.0.0.1", self.smtp_port, local_hostname="client.mailstack.invalid", timeout=SOCKET_TIMEOUT_S
        )

    def smtp_rcpt(self, address: str) -> tuple[int, str]:
        """Postfix's answer to ``RCPT TO:<address>`` (250 accepted, 5xx refused), nothing sent."""
        with self._smtp() as smtp:
            smtp.ehlo()
            smtp.mail(SENDER)
            code, message = smtp.rcpt(address)
            smtp.rset()
        return code, message.decode(errors="replace")

    def send(self, to: str | Sequence[str], subject: str, body: str = "Hello.\n", sender: str = SENDER) -> None:
        """Send one message; raise ``MailRefused`` for the first recipient Postfix refuses."""
        recipients = [to] if isinstance(to, str) else list(to)
        message = EmailMessage()
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message["Message-ID"] = f"<{uuid.uuid4().hex}@partner.invalid>"
        message.set_content(body)
        with self._smtp() as smtp:
            try:
                smtp.send_message(message, from_addr=sender, to_addrs=recipients)
            except smtplib.SMTPRecipientsRefused as refused:
                recipient, (code, reason) = next(iter(refused.recipients.items()))
                raise MailRefused(recipient, code, reason.decode(errors="replace")) from None
            except smtplib.SMTPResponseException as error:
                raise MailRefused(", ".join(recipients), error.smtp_code, str(error.smtp_error)) from None

    # -- IMAP and the mailboxes ---------------------------------------------------------------

    def imap_login(self, user: str, password: str) -> bool:
        """Whether Dovecot lets ``user`` log in over IMAP with ``password`` (any Unicode)."""
        with imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=SOCKET_TIMEOUT_S) as imap:
            try:
                _authenticate(imap, user, password)
            except imaplib.IMAP4.error:
                return False
            imap.logout()
            return True

    def imap_subjects(self, user: str, password: str) -> list[str]:
        """The subjects in ``user``'s INBOX, read over IMAP as the user."""
        with imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=SOCKET_TIMEOUT_S) as imap:
            _authenticate(imap, user, password)
            imap.select("INBOX", readonly=True)
            _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])") if _count(imap) else ("OK", [])
            imap.logout()
        subjects = []
        for item in data:
            if isinstance(item, tuple):
                header = item[1].decode(errors="replace").strip()
                subjects.append(_decoded(header.partition(":")[2]))
        return subjects

    def inbox_subjects(self, user: str) -> list[str]:
        """The subjects in ``user``'s INBOX, read by Dovecot's admin tool: no password needed."""
        result = self._doveadm("-f", "json", "fetch", "-u", user, "hdr.subject", "mailbox", "INBOX")
        if result.returncode != 0 or "User doesn't exist" in result.stderr:
            raise RuntimeError(f"doveadm fetch for {user} failed: {result.stderr.strip() or result.stdout.strip()}")
        rows = json.loads(result.stdout or "[]")
        return [_decoded(str(row.get("hdr.subject", ""))) for row in rows]

    def wait_for_subject(
        self, user: str, subject: str, *, password: str | None = None, timeout: float = 10.0
    ) -> bool:
        """Whether a message with ``subject`` reaches ``user``'s INBOX within ``timeout`` seconds.

        With a password the INBOX is read over IMAP as the user; without, through doveadm.
        """
        deadline = time.monotonic() + timeout
        while True:
            subjects = self.imap_subjects(user, password) if password is not None else self.inbox_subjects(user)
            if subject in subjects:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def user_known(self, user: str) -> bool:
        """Whether Dovecot's userdb finds ``user`` (an existing, active mailbox)."""
        return self._doveadm("user", user).returncode == 0

    def _doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = ["doveadm", "-c", str(self.workdir / "dovecot" / "dovecot.conf"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=SOCKET_TIMEOUT_S)

    def logs(self, lines: int = 40) -> str:
        """The end of Postfix's and Dovecot's logs, for failure messages."""
        parts = []
        for name in ("postfix/postfix.log", "dovecot/dovecot.log"):
            path = self.workdir / name
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
            parts.append(f"--- {name}\n" + "\n".join(text))
        return "\n".join(parts)


def _decoded(header_value: str) -> str:
    """A header's text with MIME encoded-words (=?utf-8?b?…?=) decoded and folding undone."""
    return str(make_header(decode_header(" ".join(header_value.split()))))


def _authenticate(imap: imaplib.IMAP4, user: str, password: str) -> None:
    # SASL PLAIN carries UTF-8; imaplib's LOGIN command only takes ASCII.
    credentials = b"\0" + user.encode() + b"\0" + password.encode()
    imap.authenticate("PLAIN", lambda _challenge: credentials)


def _count(imap: imaplib.IMAP4) -> int:
    _, data = imap.search(None, "ALL")
    return len(data[0].split()) if data and data[0] else 0


# -- set-up ------------------------------------------------------------------------------------


def _require_platform() -> None:
    if os.geteuid() != 0:
        unavailable("the Postfix/Dovecot mail stack", "it must run as root (Postfix's master and Dovecot need it)")
    apt_install("the Postfix/Dovecot mail stack", PACKAGES, DEBCONF)
    for tool in ("dovecot", "doveadm", "postfix"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            unavailable("the Postfix/Dovecot mail stack", f"{tool} is not installed")
    _ensure_vmail()


def _ensure_vmail() -> None:
    """The vmail user and group (uid/gid 5000) that own the mail storage."""
    try:
        group = grp.getgrnam("vmail")
    except KeyError:
        subprocess.run(["groupadd", "-g", str(VMAIL_ID), "vmail"], check=True, capture_output=True)
        group = grp.getgrnam("vmail")
    try:
        user = pwd.getpwnam("vmail")
    except KeyError:
        useradd = ["useradd", "-u", str(VMAIL_ID), "-g", "vmail", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin"]
        subprocess.run([*useradd, "vmail"], check=True, capture_output=True)
        user = pwd.getpwnam("vmail")
    if user.pw_uid != VMAIL_ID or group.gr_gid != VMAIL_ID:
        ids = f"{user.pw_uid}/{group.gr_gid}"
        unavailable("the Postfix/Dovecot mail stack", f"user/group vmail exist with ids {ids}, not {VMAIL_ID}")


def _create_logins(admin: Login, database: str) -> tuple[Login, Login, list[str]]:
    """The SELECT-only and the read/write login, and the statements that drop them again."""
    reader = admin.to(database=database, user=f"{database}_r", password=uuid.uuid4().hex)
    writer = admin.to(database=database, user=f"{database}_w", password=uuid.uuid4().hex)
    if admin.flavour == "postgresql":
        for login in (reader, writer):
            execute(admin, f"CREATE ROLE {login.user} LOGIN PASSWORD '{login.password}'")
        drops = [f"DROP ROLE IF EXISTS {reader.user}", f"DROP ROLE IF EXISTS {writer.user}"]
    else:
        for login in (reader, writer):
            execute(admin, f"CREATE USER '{login.user}'@'%' IDENTIFIED BY '{login.password}'")
        execute(admin, f"GRANT SELECT ON `{database}`.* TO '{reader.user}'@'%'")
        execute(admin, f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.* TO '{writer.user}'@'%'")
        drops = [f"DROP USER IF EXISTS '{reader.user}'@'%'", f"DROP USER IF EXISTS '{writer.user}'@'%'"]
    return reader, writer, drops


def _create_schema(owner: Login, reader: Login, writer: Login, release: Release, domains: Sequence[str]) -> None:
    """PostfixAdmin's tables for ``release`` (any older ones dropped), the domains, the grants."""
    dialect = DIALECTS[owner.flavour]
    statements: list[str | tuple[str, tuple[Any, ...]]] = [*drop_statements(dialect)]
    statements += schema_statements(dialect, release=release)
    for domain in domains:
        # As PostfixAdmin's domain form writes it: every NOT NULL column given, transport 'virtual'.
        statements.append((
            "INSERT INTO domain (domain, description, aliases, mailboxes, maxquota, quota, transport, backupmx,"
            " created, modified, active) VALUES (%s, %s, 0, 0, 0, 0, 'virtual', FALSE, NOW(), NOW(), TRUE)",
            (domain, f"{domain} (mail stack)"),
        ))
    if owner.flavour == "postgresql":
        statements += [
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader.user}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {writer.user}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {writer.user}",
        ]
    execute_all(owner, statements, transaction=owner.flavour == "postgresql")


# -- configuration -----------------------------------------------------------------------------

# PostfixAdmin's documented queries (DOCUMENTS/POSTFIX_CONF.txt, DOVECOT.txt). CONCAT() and
# active = '1' read the same on PostgreSQL (boolean) and MariaDB (tinyint); || would be a
# logical OR on MariaDB.
_POSTFIX_QUERIES = {
    "domains": "SELECT domain FROM domain WHERE domain = '%s' AND active = '1'",
    "mailbox": "SELECT maildir FROM mailbox WHERE username = '%s' AND active = '1'",
    "alias_domain_mailbox": "SELECT maildir FROM mailbox, alias_domain WHERE alias_domain.alias_domain = '%d'"
    " AND mailbox.username = CONCAT('%u', '@', alias_domain.target_domain) AND mailbox.active = '1'"
    " AND alias_domain.active = '1'",
    "alias": "SELECT goto FROM alias WHERE address = '%s' AND active = '1'",
    "alias_domain": "SELECT goto FROM alias, alias_domain WHERE alias_domain.alias_domain = '%d'"
    " AND alias.address = CONCAT('%u', '@', alias_domain.target_domain) AND alias.active = '1'"
    " AND alias_domain.active = '1'",
    "alias_domain_catchall": "SELECT goto FROM alias, alias_domain WHERE alias_domain.alias_domain = '%d'"
    " AND alias.address = CONCAT('@', alias_domain.target_domain) AND alias.active = '1'"
    " AND alias_domain.active = '1'",
}

# Every service the smtpd → cleanup → qmgr → lmtp path needs, none chrooted (no copies of
# /etc files into the queue directory).
_MASTER_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _write_postfix(directory: Path, reader: Login, smtp_port: int, lmtp_socket: Path) -> None:
    for sub in ("spool", "data"):
        (directory / sub).mkdir(parents=True)
    shutil.chown(directory / "data", user="postfix")
    driver = "pgsql" if reader.flavour == "postgresql" else "mysql"
    maps: dict[str, str] = {}
    for name, query in _POSTFIX_QUERIES.items():
        path = directory / f"{name}.cf"
        path.write_text(
            f"hosts = inet:{reader.host}:{reader.port}\nuser = {reader.user}\npassword = {reader.password}\n"
            f"dbname = {reader.database}\nquery = {query}\n"
        )
        # The maps hold a password: readable by Postfix's daemons, nobody else.
        path.chmod(0o640)
        shutil.chown(path, group="postfix")
        maps[name] = f"{driver}:{path}"
    (directory / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {directory / "spool"}
data_directory = {directory / "data"}
maillog_file = /dev/stdout
myhostname = mx.mailstack.invalid
mydomain = mailstack.invalid
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = reject_unauth_destination
relay_domains =
default_transport = discard:no mail leaves a test machine
biff = no
append_dot_mydomain = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
virtual_mailbox_domains = {maps["domains"]}
virtual_mailbox_maps = {maps["mailbox"]}, {maps["alias_domain_mailbox"]}
virtual_alias_maps = {maps["alias"]}, {maps["alias_domain"]}, {maps["alias_domain_catchall"]}
virtual_transport = lmtp:unix:{lmtp_socket}
""")
    (directory / "master.cf").write_text(
        f"127.0.0.1:{smtp_port} inet n       -       n       -       -       smtpd\n" + _MASTER_SERVICES
    )


def _write_dovecot(directory: Path, reader: Login, imap_port: int, vmail: Path) -> Path:
    for sub in ("run", "state"):
        (directory / sub).mkdir(parents=True)
    driver = "pgsql" if reader.flavour == "postgresql" else "mysql"
    sql = directory / "sql.conf.ext"
    sql.write_text(f"""\
driver = {driver}
connect = host={reader.host} port={reader.port} dbname={reader.database} user={reader.user} password={reader.password}
default_pass_scheme = SHA512-CRYPT
password_query = SELECT username AS user, password FROM mailbox WHERE username = '%u' AND active = '1'
user_query = SELECT CONCAT('{vmail}/', maildir) AS home, {VMAIL_ID} AS uid, {VMAIL_ID} AS gid \\
  FROM mailbox WHERE username = '%u' AND active = '1'
iterate_query = SELECT username AS user FROM mailbox WHERE active = '1'
""")
    sql.chmod(0o600)
    conf = directory / "dovecot.conf"
    # Failed logins would otherwise stall each next attempt 2-15 s: anvil's penalty socket is
    # disabled (login_trusted_networks does not lift it for IMAP on Dovecot 2.3).
    conf.write_text(f"""\
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {directory / "run"}
state_dir = {directory / "state"}
log_path = {directory / "dovecot.log"}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:~/Maildir
first_valid_uid = {VMAIL_ID}
last_valid_uid = {VMAIL_ID}
passdb {{
  driver = sql
  args = {sql}
}}
userdb {{
  driver = sql
  args = {sql}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""")
    return conf


# -- the whole stack ---------------------------------------------------------------------------


@contextlib.contextmanager
def running_mailstack(
    flavour: Flavour, *, release: Release = DEFAULT_RELEASE, domains: Sequence[str] = DEFAULT_DOMAINS
) -> Iterator[MailStack]:
    """Postfix and Dovecot on a fresh PostfixAdmin database; skip (fail in CI) where impossible."""
    _require_platform()
    server = server_login(flavour)
    with contextlib.ExitStack() as cleanup:
        database = unique_name("mailstack")
        # Logins first, so that they are dropped after the database (PostgreSQL refuses to drop
        # a role that still holds privileges in it).
        reader, writer, drop_logins = _create_logins(server, database)
        cleanup.callback(execute_all, server, drop_logins, transaction=False)
        execute(server, f"CREATE DATABASE {database}")
        drop_database = f"DROP DATABASE IF EXISTS {database}" + (" WITH (FORCE)" if flavour == "postgresql" else "")
        cleanup.callback(execute, server, drop_database)
        admin = server.to(database=database)
        _create_schema(admin, reader, writer, release, domains)

        workdir = Path(tempfile.mkdtemp(prefix="mailstack-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        workdir.chmod(0o755)  # vmail's deliveries and Postfix's daemons traverse it
        vmail = workdir / "vmail"
        vmail.mkdir()
        shutil.chown(vmail, user="vmail", group="vmail")
        smtp_port, imap_port = free_port(), free_port()
        dovecot_conf = _write_dovecot(workdir / "dovecot", reader, imap_port, vmail)
        _write_postfix(workdir / "postfix", reader, smtp_port, workdir / "dovecot" / "run" / "lmtp")

        dovecot_log = cleanup.enter_context((workdir / "dovecot" / "stdout.log").open("wb"))
        dovecot = subprocess.Popen(
            ["dovecot", "-F", "-c", str(dovecot_conf)], stdout=dovecot_log, stderr=subprocess.STDOUT
        )
        cleanup.callback(stop_process, dovecot)
        postfix_log = cleanup.enter_context((workdir / "postfix" / "postfix.log").open("wb"))
        postfix = subprocess.Popen(
            ["postfix", "-c", str(workdir / "postfix"), "start-fg"], stdout=postfix_log, stderr=subprocess.STDOUT
        )
        cleanup.callback(stop_process, postfix)
        # start-fg keeps Postfix's master as a child of the postfix-script shell: stop it by its PID.
        cleanup.callback(_stop_postfix_master, workdir / "postfix" / "spool" / "pid" / "master.pid")
        stack = MailStack(
            flavour=flavour, release=release, database=database, domains=tuple(domains), admin=admin,
            writer=writer, reader=reader, smtp_port=smtp_port, imap_port=imap_port, workdir=workdir,
        )
        try:
            wait_for_port(imap_port, START_TIMEOUT_S, dovecot)
            wait_for_port(smtp_port, START_TIMEOUT_S, postfix)
            _wait_for_lmtp(workdir / "dovecot" / "run" / "lmtp", dovecot)
        except RuntimeError as exc:
            raise RuntimeError(f"the mail stack did not start: {exc}\n{stack.logs()}") from exc
        yield stack


def _wait_for_lmtp(socket_path: Path, dovecot: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not socket_path.exists():
        if dovecot.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Dovecot's LMTP socket {socket_path} did not appear")
        time.sleep(0.05)


def _stop_postfix_master(pid_file: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        stop_pid(int(pid_file.read_text().strip()))
