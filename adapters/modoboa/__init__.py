"""The Modoboa backend: a real mail-hosting platform's REST API (v2)."""
