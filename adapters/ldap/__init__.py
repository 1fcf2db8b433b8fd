"""The ``ldap`` backend: mailboxes and lists as entries of an LDAP directory (see ``adapter.py``)."""
