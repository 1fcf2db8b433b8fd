"""Real-server fixtures. Modoboa's (``conftest_modoboa.py``) are registered in tests/conftest.py: the Entra
suite and the contract kit use them too."""
