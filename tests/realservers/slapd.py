"""A throwaway OpenLDAP slapd on 127.0.0.1: configuration, process, and checks through OpenLDAP's own tools.

The directory looks like a small mail platform's: people and groups under two OUs, a password
policy (ppolicy overlay, lockout on) that every account falls under, and a least-privilege
service account that may write only below those two OUs. Optional variants add the memberof +
refint overlays (group memberships kept consistent by the server) and TLS (StartTLS and ldaps
with a throwaway CA). Every variant also answers below ``ou=faults`` with canned failures (the
retcode overlay), so clients can meet busy/unavailable/slow answers from a real server. Besides
the stock schemas, a small mail-platform schema (``mailUser`` + ``accountStatus``) lets a client
disable mailboxes through a status attribute, and the service account has no search size limit.

The default policy locks an account for 15 minutes after 5 failed binds: a test that binds with
wrong passwords more often than that needs its own user.

Checks go through ``ldapsearch``/``ldapmodify``/``ldapwhoami``/``ldappasswd`` rather than a
Python LDAP library, so code under test is never verified by the library it is built on. Every
tool's exit status is the LDAP result code, which ``LdapToolError.result_code`` carries.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.realservers.support import free_port, stop_process, wait_for_port

PACKAGES = ["slapd", "ldap-utils"]
DEBCONF = {"slapd slapd/no_configuration": "boolean true"}

SUFFIX = "dc=example,dc=org"
MODULE_PATH = "/usr/lib/ldap"
SCHEMA_DIR = Path("/etc/ldap/schema")
# nis brings posixAccount/posixGroup and misc the mail routing attributes many mail platforms use.
SCHEMAS = ("core", "cosine", "inetorgperson", "nis", "misc")
# A mail platform's own schema, reduced to what a status-attribute profile needs (in the spirit of
# iRedMail's mailUser/accountStatus, written afresh; OIDs from RFC 5612's example arc).
MAIL_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.32473.1.1.1 NAME 'accountStatus'
    DESC 'whether a mailbox may be used: active or disabled'
    EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.32473.1.2.1 NAME 'mailUser'
    DESC 'a mailbox of the test mail platform'
    SUP top AUXILIARY MUST ( mail $ uid ) MAY ( accountStatus ) )
"""
# SCIM active=false is stored as this value: ppolicy treats it as "locked until an administrator unlocks"
# (only with pwdLockout TRUE in the policy). Any password change removes it again, even in the same request.
PERMANENTLY_LOCKED = "000001010000Z"
# What the refint variant writes into a groupOfNames whose last member was deleted (member is MUST).
REFINT_PLACEHOLDER = f"cn=placeholder,{SUFFIX}"
# A virtual subtree (retcode overlay, nothing stored): every operation on cn=<name> below it gets that answer.
FAULTS_DN = f"ou=faults,{SUFFIX}"
FAULTS = {
    "busy": '0x33 text="busy, as configured for tests"',
    "unavailable": '0x34 text="unavailable, as configured for tests"',
    "slow": "0x00 sleeptime=3",  # success after three seconds: for client timeouts
}

START_TIMEOUT_S = 20.0
TOOL_TIMEOUT_S = 20.0

# LDAP result codes (RFC 4511) that tests and adapters meet.
SUCCESS = 0
PROTOCOL_ERROR = 2
NO_SUCH_ATTRIBUTE = 16
CONSTRAINT_VIOLATION = 19
ATTRIBUTE_OR_VALUE_EXISTS = 20
INVALID_ATTRIBUTE_SYNTAX = 21
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS = 50
BUSY = 51
UNAVAILABLE = 52
UNWILLING_TO_PERFORM = 53
OBJECT_CLASS_VIOLATION = 65
NOT_ALLOWED_ON_NON_LEAF = 66
ENTRY_ALREADY_EXISTS = 68
SERVER_DOWN = 255  # the tools' own code (LDAP_SERVER_DOWN, -1) for "cannot contact the server"


def _server_tool(name: str) -> str:
    # /usr/sbin is often missing from a non-root PATH.
    return shutil.which(name) or f"/usr/sbin/{name}"


def _wait_until_stopped(pid: int, timeout: float = 2.0) -> None:
    """Return once every thread of ``pid`` is stopped: a signal takes effect when each thread is next
    scheduled, and on a busy machine a worker may otherwise still answer a request sent right after it."""
    deadline = time.monotonic() + timeout
    tasks = Path(f"/proc/{pid}/task")
    while time.monotonic() < deadline:
        states = []
        for task in tasks.iterdir() if tasks.exists() else ():
            with contextlib.suppress(OSError):
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        if states and all(state in ("T", "t") for state in states):
            return
        time.sleep(0.005)
    raise RuntimeError(f"slapd (pid {pid}) did not stop within {timeout:.0f}s")


class LdapToolError(RuntimeError):
    """An OpenLDAP command-line tool failed; ``result_code`` is the LDAP result code it exited with."""

    def __init__(self, command: str, result_code: int, output: str) -> None:
        super().__init__(f"{command} failed with LDAP result {result_code}: {output.strip()[-600:]}")
        self.command = command
        self.result_code = result_code
        self.output = output


@dataclass(frozen=True)
class LdapEntry:
    """One entry as read back; attribute names are lower-cased, values are strings (binary values decoded)."""

    dn: str
    attributes: Mapping[str, Sequence[str]]

    def get(self, name: str) -> list[str]:
        return list(self.attributes.get(name.lower(), ()))

    def first(self, name: str) -> str | None:
        values = self.attributes.get(name.lower())
        return values[0] if values else None


@dataclass(frozen=True)
class SlapdOptions:
    refint: bool = False  # memberof + refint overlays on member
    tls: bool = False  # StartTLS on the ldap:// port and an ldaps:// port, certificates from a throwaway CA
    monitor: bool = False  # the monitor database (cn=Monitor): operation counts, readable by the admin


def parse_ldif(text: str) -> list[LdapEntry]:
    """Parse ``ldapsearch -LLL -o ldif-wrap=no`` output (no folded lines; ``::`` means base64)."""
    entries: list[LdapEntry] = []
    for block in text.strip().split("\n\n"):
        dn = ""
        attributes: dict[str, list[str]] = {}
        for line in block.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, rest = line.partition(":")
            if rest.startswith(":"):
                value = base64.b64decode(rest[1:].strip()).decode("utf-8", errors="replace")
            else:
                value = rest.removeprefix(" ")
            if name.lower() == "dn":
                dn = value
            else:
                attributes.setdefault(name.lower(), []).append(value)
        if dn or attributes:
            entries.append(LdapEntry(dn, attributes))
    return entries


def ldif_record(dn: str, attributes: Mapping[str, str | Iterable[str]]) -> str:
    """An LDIF content record; values that LDIF cannot carry verbatim are base64-encoded."""
    lines = [_ldif_line("dn", dn)]
    for name, values in attributes.items():
        for value in [values] if isinstance(values, str) else values:
            lines.append(_ldif_line(name, value))
    return "\n".join(lines) + "\n"


def _ldif_line(name: str, value: str) -> str:
    safe = value.isascii() and value == value.strip() and not value.startswith((":", "<")) and "\n" not in value
    if safe and value:
        return f"{name}: {value}"
    if not value:
        return f"{name}:"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


class Slapd:
    """One slapd instance: its files live in ``workdir``; ``start``/``stop``/``restart`` keep data and ports."""

    def __init__(self, workdir: Path, options: SlapdOptions = SlapdOptions()) -> None:
        self.workdir = workdir
        self.options = options
        self.port = free_port()
        self.tls_port = free_port() if options.tls else None
        self.base_dn = SUFFIX
        self.users_dn = f"ou=people,{SUFFIX}"
        self.groups_dn = f"ou=groups,{SUFFIX}"
        self.policy_dn = f"cn=default,ou=policies,{SUFFIX}"
        self.faults_dn = FAULTS_DN
        self.admin_dn = f"cn=admin,{SUFFIX}"
        self.admin_password = "admin-secret-for-tests"
        self.service_dn = f"cn=scim-gateway,ou=services,{SUFFIX}"
        self.service_password = "service-secret-for-tests"
        self.ca_file: Path | None = None
        self._conf = workdir / "slapd.conf"
        self._log = workdir / "slapd.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("this slapd was configured without TLS")
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def configure(self) -> None:
        """Write slapd.conf (and certificates) and load the base entries offline with slapadd."""
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        if self.options.tls:
            self._write_certificates()
        self._conf.write_text(self._slapd_conf())
        base = self.workdir / "base.ldif"
        base.write_text(self._base_ldif())
        result = subprocess.run(
            [_server_tool("slapadd"), "-q", "-f", str(self._conf), "-l", str(base)],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
        )
        if result.returncode != 0:
            raise RuntimeError(f"slapadd failed ({result.returncode}): {result.stderr.strip()[-800:]}")

    def start(self) -> None:
        if self.pid is not None:
            return
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_for_port(self.port, START_TIMEOUT_S, self._process)
            self._wait_until_answering()
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}; slapd log: {self.log_tail()}") from error

    def command(self) -> list[str]:
        """The command line that serves this configuration (for a caller that runs the process itself)."""
        urls = self.url + "/"
        if self.tls_port is not None:
            urls += f" ldaps://127.0.0.1:{self.tls_port}/"
        # -d 0 keeps slapd in the foreground (its PID is ours to stop) without debug output.
        return [_server_tool("slapd"), "-d", "0", "-h", urls, "-f", str(self._conf)]

    def operation_counts(self) -> dict[str, int]:
        """Operations slapd has completed, by kind (bind, search, add, modify, …); needs ``monitor``.

        This reading is itself a bind, a search and an unbind, which the next reading includes.
        """
        found = self.search("cn=Operations,cn=Monitor", "(objectClass=*)", ["monitorOpCompleted"], scope="one")
        return {entry.dn.split(",")[0].split("=")[1].lower(): int(entry.first("monitorOpCompleted") or 0)
                for entry in found}

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def restart(self) -> None:
        """Stop and start again: same data, same port(s); established connections are cut."""
        self.stop()
        self.start()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block (connections refused) and back, same data and port, after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The server hangs inside the block (SIGSTOP: connections accepted by the kernel, never answered)."""
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("slapd is not running")
        self._process.send_signal(signal.SIGSTOP)
        try:
            _wait_until_stopped(self._process.pid)
            yield
        finally:
            self._process.send_signal(signal.SIGCONT)

    def fault_dn(self, name: str) -> str:
        """The DN below ``ou=faults`` whose every operation is answered as ``name`` (busy, unavailable, slow)."""
        if name not in FAULTS:
            raise KeyError(f"no canned fault {name!r}; known: {', '.join(FAULTS)}")
        return f"cn={name},{FAULTS_DN}"

    @staticmethod
    def fresh_name(prefix: str) -> str:
        """A name no other test uses (servers are shared by the whole session)."""
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def log_tail(self, chars: int = 1500) -> str:
        return self._log.read_text(errors="replace")[-chars:] if self._log.exists() else ""

    def _wait_until_answering(self) -> None:
        # The listening socket exists before the databases are open: ask something real.
        for _ in range(int(START_TIMEOUT_S / 0.1)):
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError("slapd exited during start-up")
            if self.bind_result(self.admin_dn, self.admin_password)[0] == SUCCESS:
                return
            time.sleep(0.1)
        raise RuntimeError(f"slapd on {self.url} does not answer binds")

    # -- checks through the OpenLDAP tools ------------------------------------------------------------------------

    def bind_ok(self, dn: str, password: str) -> bool:
        """Whether a simple bind as ``dn`` succeeds.

        False on invalidCredentials (wrong password, no password stored, account locked) and on
        unwillingToPerform (an empty password, which slapd refuses as an unauthenticated bind).
        """
        code, output = self.bind_result(dn, password)
        if code in (SUCCESS, INVALID_CREDENTIALS, UNWILLING_TO_PERFORM):
            return code == SUCCESS
        raise LdapToolError("ldapwhoami", code, output)

    def bind_result(
        self, dn: str, password: str, *, url: str | None = None, starttls: bool = False, ppolicy: bool = False
    ) -> tuple[int, str]:
        """The raw outcome of a simple bind: LDAP result code and what ldapwhoami printed.

        ``ppolicy`` sends the password policy request control (the answer then names a locked account
        only when the server is configured with ppolicy_use_lockout, which this one is not).
        """
        arguments = self._connection(dn, password, url)
        if starttls:
            arguments.append("-ZZ")
        if ppolicy:
            arguments += ["-e", "ppolicy"]
        result = self._tool("ldapwhoami", arguments, check=False)
        return result.returncode, (result.stdout + result.stderr).strip()

    def search(
        self,
        base: str | None = None,
        filterstr: str = "(objectClass=*)",
        attributes: Sequence[str] = (),
        scope: str = "sub",
        bind_dn: str | None = None,
        password: str | None = None,
    ) -> list[LdapEntry]:
        """Search (as the admin unless told otherwise); ``attributes`` may name operational ones or be ``["+"]``."""
        arguments = [
            *self._connection(bind_dn, password),
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-b",
            base or self.base_dn,
            "-s",
            scope,
            filterstr,
            *attributes,
        ]
        return parse_ldif(self._tool("ldapsearch", arguments).stdout)

    def read(self, dn: str, attributes: Sequence[str] = ("*", "+")) -> LdapEntry | None:
        """One entry with its user and operational attributes, or None when it does not exist."""
        try:
            found = self.search(dn, attributes=attributes, scope="base")
        except LdapToolError as error:
            if error.result_code == NO_SUCH_OBJECT:
                return None
            raise
        return found[0] if found else None

    def modify(self, ldif: str, bind_dn: str | None = None, password: str | None = None) -> None:
        """Apply LDIF change records (``changetype: add/modify/delete/modrdn``) with ldapmodify."""
        self._tool("ldapmodify", [*self._connection(bind_dn, password)], stdin=ldif)

    def add(
        self,
        dn: str,
        attributes: Mapping[str, str | Iterable[str]],
        bind_dn: str | None = None,
        password: str | None = None,
    ) -> None:
        self.modify(ldif_record(dn, {"changetype": "add", **attributes}), bind_dn, password)

    def delete(self, dn: str, bind_dn: str | None = None, password: str | None = None) -> None:
        self._tool("ldapdelete", [*self._connection(bind_dn, password), dn])

    def set_password(self, dn: str, new_password: str, bind_dn: str | None = None, password: str | None = None) -> None:
        """The password-modify extended operation (RFC 3062): the server hashes and stores the password."""
        self._tool("ldappasswd", [*self._connection(bind_dn, password), "-s", new_password, dn])

    def add_user(self, uid: str, mail: str | None = None, **extra: str | Iterable[str]) -> str:
        """An inetOrgPerson below ``users_dn`` (added by the admin, no password); returns its DN."""
        dn = f"uid={uid},{self.users_dn}"
        attributes: dict[str, str | Iterable[str]] = {
            "objectClass": "inetOrgPerson",
            "uid": uid,
            "cn": uid,
            "sn": uid,
        }
        if mail is not None:
            attributes["mail"] = mail
        attributes.update(extra)
        self.add(dn, attributes)
        return dn

    def _connection(self, bind_dn: str | None, password: str | None, url: str | None = None) -> list[str]:
        if bind_dn is None:
            bind_dn, password = self.admin_dn, self.admin_password
        return ["-x", "-H", url or self.url, "-D", bind_dn, "-w", password or "", "-o", "nettimeout=5"]

    def _tool(
        self, command: str, arguments: list[str], stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # Nothing from the machine's or the user's LDAP settings (LDAPNOINIT would also drop LDAPTLS_CACERT).
        env = {name: value for name, value in os.environ.items() if not name.startswith("LDAP")}
        env["LDAPCONF"] = os.devnull
        env["LDAPRC"] = "no-ldaprc-for-throwaway-slapd"
        if self.ca_file is not None:
            env["LDAPTLS_CACERT"] = str(self.ca_file)
        result = subprocess.run(
            [command, *arguments],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=TOOL_TIMEOUT_S,
        )
        if check and result.returncode != SUCCESS:
            raise LdapToolError(command, result.returncode, result.stdout + result.stderr)
        return result

    # -- configuration ---------------------------------------------------------------------------------------------

    def _hash(self, secret: str) -> str:
        result = subprocess.run(
            [_server_tool("slappasswd"), "-h", "{SSHA}", "-s", secret], capture_output=True, text=True, check=True
        )
        return result.stdout.strip()

    def _write_certificates(self) -> None:
        import trustme  # a dev dependency; only the TLS variant needs it

        authority = trustme.CA()
        certificate = authority.issue_cert("127.0.0.1", "localhost")
        self.ca_file = self.workdir / "ca.pem"
        authority.cert_pem.write_to_path(str(self.ca_file))
        certificate.private_key_pem.write_to_path(str(self.workdir / "server.key"))
        chain = self.workdir / "server.pem"
        chain.write_bytes(b"".join(blob.bytes() for blob in certificate.cert_chain_pems))

    def _slapd_conf(self) -> str:
        service = self.service_dn
        lines = [f"include {SCHEMA_DIR / name}.schema" for name in SCHEMAS]
        mail_schema = self.workdir / "mail-platform.schema"
        mail_schema.write_text(MAIL_SCHEMA)
        lines.append(f"include {mail_schema}")
        lines += [
            f"pidfile {self.workdir / 'slapd.pid'}",
            f"argsfile {self.workdir / 'slapd.args'}",
            f"modulepath {MODULE_PATH}",
            "moduleload back_mdb",
            "moduleload ppolicy",  # 2.5 builds the ppolicy schema into the module: no ppolicy.schema
            "moduleload retcode",
        ]
        if self.options.refint:
            lines += ["moduleload memberof", "moduleload refint"]
        if self.options.tls:
            lines += [
                f"TLSCACertificateFile {self.ca_file}",
                f"TLSCertificateFile {self.workdir / 'server.pem'}",
                f"TLSCertificateKeyFile {self.workdir / 'server.key'}",
            ]
        lines += [
            "password-hash {SSHA}",
            "database mdb",
            f"suffix {SUFFIX}",
            f"rootdn {self.admin_dn}",
            f"rootpw {self._hash(self.admin_password)}",
            f"directory {self.workdir / 'data'}",
            "maxsize 1073741824",
            "dbnosync",  # a throwaway: no fsync per write
            "index objectClass eq",
            "index uid,mail,cn eq,sub",
            "index member,entryUUID eq",
            # Listings of thousands of mailboxes: slapd's default caps a non-root search at 500 entries.
            f'limits dn.exact="{self.service_dn}" size=unlimited time=unlimited',
        ]
        if self.options.refint:
            lines.append("index memberOf eq")
        lines += ["overlay retcode", f'retcode-parent "{FAULTS_DN}"']
        lines += [f'retcode-item "cn={name}" {answer}' for name, answer in FAULTS.items()]
        lines += [
            "overlay ppolicy",
            f'ppolicy_default "{self.policy_dn}"',
        ]
        if self.options.refint:
            lines += [
                "overlay memberof",
                "memberof-group-oc groupOfNames",
                "memberof-member-ad member",
                "memberof-memberof-ad memberOf",
                "memberof-refint TRUE",
                "overlay refint",
                "refint_attributes member",
                f'refint_nothing "{REFINT_PLACEHOLDER}"',
            ]
        people, groups = self.users_dn, self.groups_dn
        lines += [
            # Passwords: users bind and change their own; the service account may only set (never read) them
            # below ou=people. Nobody else sees a hash.
            f'access to dn.children="{people}" attrs=userPassword',
            f'    by dn.exact="{service}" =w',
            "    by self =wx",
            "    by anonymous auth",
            "    by * none",
            "access to attrs=userPassword",
            "    by self =wx",
            "    by anonymous auth",
            "    by * none",
            # The service account creates and deletes entries in the two OUs (not the OUs themselves) ...
            f'access to dn.base="{people}" attrs=children',
            f'    by dn.exact="{service}" write',
            "    by * break",
            f'access to dn.base="{groups}" attrs=children',
            f'    by dn.exact="{service}" write',
            "    by * break",
            # ... and writes every attribute of what is below them (pwdAccountLockedTime included).
            f'access to dn.children="{people}"',
            f'    by dn.exact="{service}" write',
            "    by * break",
            f'access to dn.children="{groups}"',
            f'    by dn.exact="{service}" write',
            "    by * break",
            "access to *",
            "    by users read",
            "    by * none",
        ]
        if self.options.monitor:
            lines += ["database monitor", f'access to * by dn.exact="{self.admin_dn}" read by * none']
        return "\n".join(lines) + "\n"

    def _base_ldif(self) -> str:
        records = [
            ldif_record(SUFFIX, {"objectClass": ["dcObject", "organization"], "dc": "example", "o": "Example"}),
            ldif_record(self.users_dn, {"objectClass": "organizationalUnit", "ou": "people"}),
            ldif_record(self.groups_dn, {"objectClass": "organizationalUnit", "ou": "groups"}),
            ldif_record(f"ou=services,{SUFFIX}", {"objectClass": "organizationalUnit", "ou": "services"}),
            ldif_record(f"ou=policies,{SUFFIX}", {"objectClass": "organizationalUnit", "ou": "policies"}),
            ldif_record(
                self.service_dn,
                {
                    "objectClass": ["organizationalRole", "simpleSecurityObject"],
                    "cn": "scim-gateway",
                    "description": "SCIM provisioning: writes below ou=people and ou=groups only",
                    "userPassword": self._hash(self.service_password),
                },
            ),
            ldif_record(
                self.policy_dn,
                {
                    "objectClass": ["organizationalRole", "pwdPolicy"],
                    "cn": "default",
                    "pwdAttribute": "userPassword",
                    "pwdLockout": "TRUE",
                    "pwdMaxFailure": "5",
                    "pwdLockoutDuration": "900",
                    "pwdFailureCountInterval": "900",
                    "pwdAllowUserChange": "TRUE",
                    "pwdMustChange": "FALSE",
                    "pwdCheckQuality": "0",
                },
            ),
        ]
        return "\n".join(records)
