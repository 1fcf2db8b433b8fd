"""The ``scim-gateway`` command: serve, mock-cleanmail, token, check, reconcile, verify-backend, backends,
postfixadmin-schema."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from gateway.logs import configure_logging


def _serve(args: argparse.Namespace) -> int:
    from gateway.ops.settings_report import ConfigProblems, load
    from gateway.serving import serve

    try:
        settings = load(args.config)
    except ConfigProblems as exc:
        for line in exc.lines:
            print(f"configuration error: {line}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    return serve(settings.model_copy(update=overrides) if overrides else settings)


def _mock(args: argparse.Namespace) -> int:
    from adapters.cleanmail.mock import run_mock
    from adapters.cleanmail.mock_state import MockQuirks

    configure_logging("auto", "info")
    quirks = MockQuirks(auto_create_domains=args.auto_create_domains)
    run_mock(args.host, args.port, args.api_key, Path(args.data) if args.data else None, args.control,
             domains=args.domain, quirks=quirks)
    return 0


def _token(args: argparse.Namespace) -> int:
    from gateway.tenants import hash_token

    token = secrets.token_urlsafe(32)
    print(f"token:  {token}")
    print(f"sha256: {hash_token(token)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from gateway.ops.check import main as check

    return check(args.config, wait_s=args.timeout)


def _reconcile(args: argparse.Namespace) -> int:
    from gateway.ops.reconcile import main as reconcile

    return reconcile(args.tenant, args.config, as_json=args.json, fix=args.fix)


def _verify_backend(args: argparse.Namespace) -> int:
    from gateway.ops.verify import main as verify

    return verify(args.config, args.tenant, args.domain, args.i_accept_side_effects)


def _backends(args: argparse.Namespace) -> int:
    from gateway.ops.backends_report import main as backends

    return backends()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scim-gateway", description="SCIM 2.0 gateway for mail platforms")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the SCIM gateway")
    serve.add_argument("--config", type=Path, default=None, help="TOML settings file")
    serve.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default 8080)")
    serve.set_defaults(run=_serve)

    mock = sub.add_parser("mock-cleanmail", help="run the mock Cleanmail-like mail-admin API")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=8081)
    mock.add_argument("--api-key", default="mock-api-key")
    mock.add_argument("--data", default=None, help="JSON file the mock persists its data to")
    mock.add_argument("--control", action="store_true", help="enable the /__mock__ fault-injection endpoints")
    mock.add_argument("--domain", action="append", default=[], help="a mail domain to create (repeatable)")
    mock.add_argument("--auto-create-domains", action="store_true",
                      help="create unknown mail domains on first use instead of refusing the mailbox")
    mock.set_defaults(run=_mock)

    token = sub.add_parser("token", help="print a new bearer token and its sha256 hash")
    token.set_defaults(run=_token)

    check = sub.add_parser("check", help="validate the configuration and reach the state store and every backend",
                           description="Exit status: 0 all OK, 1 a component failed, 2 the configuration is wrong.")
    check.add_argument("--config", type=Path, default=None, help="TOML settings file")
    check.add_argument("--timeout", type=float, default=10.0, help="seconds each component may take (default 10)")
    check.set_defaults(run=_check)

    reconcile = sub.add_parser(
        "reconcile", help="report drift between a tenant's backend and the gateway's state",
        description="Lists mailboxes and lists the gateway does not know, mappings whose object is gone, and "
                    "attributes changed on the platform. Exit status: 0 in sync, 1 drift remains, "
                    "2 configuration problem, 3 the run failed.")
    reconcile.add_argument("--tenant", required=True, help="tenant name ('default' for the quick-start tenant)")
    reconcile.add_argument("--config", type=Path, default=None, help="TOML settings file")
    reconcile.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    reconcile.add_argument("--fix", action="store_true",
                           help="adopt unknown mailboxes and lists, drop dead mappings (attributes are not changed)")
    reconcile.set_defaults(run=_reconcile)

    verify = sub.add_parser(
        "verify-backend", help="run the backend contract kit against a tenant's configured mail platform",
        description="Creates, reads, changes and deletes test mailboxes and lists it names itself (kit-*@DOMAIN), "
                    "and leaves nothing behind. Exit status: 0 every check passed, 1 a check failed, "
                    "2 configuration problem.")
    verify.add_argument("--config", type=Path, default=None, help="TOML settings file")
    verify.add_argument("--tenant", default=None, help="tenant name (default: the only one, or 'default')")
    verify.add_argument("--domain", required=True, help="mail domain (on the platform) for the test mailboxes")
    verify.add_argument("--i-accept-side-effects", action="store_true",
                        help="confirm that test objects may be created and deleted on the platform")
    verify.set_defaults(run=_verify_backend)

    backends = sub.add_parser("backends", help="list the installed backends and their settings")
    backends.set_defaults(run=_backends)

    from adapters.postfixadmin.command import add_parser as add_postfixadmin_schema

    add_postfixadmin_schema(sub)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    return [name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
