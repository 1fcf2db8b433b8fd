"""The default backend: a Cleanmail-like legacy mail-admin API.

``adapter`` maps SCIM records onto it, ``client`` talks HTTP to it (retries, deadlines,
error mapping), ``mapping`` holds the pure translations, and ``mock*`` is a stand-in
server for development and tests. Nothing is imported here, so loading the adapter
never pulls in the server side.
"""
