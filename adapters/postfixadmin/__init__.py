"""The PostfixAdmin backend: the SQL database that Postfix and Dovecot read (PostgreSQL, MariaDB/MySQL).

``adapter`` maps SCIM records onto rows, ``statements`` holds the SQL, ``db`` the pooled
connections and what is retried, ``mapping`` the pure translations, ``passwords`` the hashes
Dovecot reads, ``probe`` the schema check, ``schema`` PostfixAdmin's own DDL and ``command``
the ``postfixadmin-schema`` command. Nothing is imported here.
"""
