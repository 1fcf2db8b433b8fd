"""Fixtures for real servers; each server's fixtures live in their own module."""

from tests.realservers.conftest_slapd import slapd, slapd_refint, slapd_tls

__all__ = ["slapd", "slapd_refint", "slapd_tls"]
