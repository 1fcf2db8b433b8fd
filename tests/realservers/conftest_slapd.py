"""Session fixtures for a real OpenLDAP slapd: ``slapd`` (no refint), ``slapd_refint``, ``slapd_tls``.

Each fixture starts its own throwaway server on a free 127.0.0.1 port the first time a test asks
for it and stops it (by PID) when the session ends. Servers are shared by every test of the
session: name entries with ``Slapd.fresh_name`` and leave the server running (``stopped()`` and
``paused()`` restore it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.realservers.slapd import DEBCONF, PACKAGES, Slapd, SlapdOptions
from tests.realservers.support import apt_install, unavailable


def _serve(tmp_path_factory: pytest.TempPathFactory, name: str, options: SlapdOptions) -> Iterator[Slapd]:
    apt_install("OpenLDAP slapd", PACKAGES, DEBCONF)
    server = Slapd(tmp_path_factory.mktemp(name), options)
    try:
        server.configure()
        server.start()
    except (RuntimeError, OSError) as error:
        server.stop()
        unavailable("OpenLDAP slapd", str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A slapd without refint: the directory keeps member values pointing at deleted or renamed entries."""
    yield from _serve(tmp_path_factory, "slapd", SlapdOptions())


@pytest.fixture(scope="session")
def slapd_refint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A slapd with memberof + refint: deletes and renames rewrite member values; users carry memberOf."""
    yield from _serve(tmp_path_factory, "slapd-refint", SlapdOptions(refint=True))


@pytest.fixture(scope="session")
def slapd_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A slapd offering StartTLS on ``url`` and TLS on ``ldaps_url``; clients trust ``ca_file``."""
    yield from _serve(tmp_path_factory, "slapd-tls", SlapdOptions(tls=True))
