"""Fixtures for real servers: each server's fixtures live in their own module, registered for the whole
suite by tests/matrix.py (a plugin of the root conftest), so each server runs once per session."""
