"""``scim-gateway backends``: the installed backends, their settings and how to set them."""

from __future__ import annotations

import sys
from typing import TextIO

from gateway.backends import BrokenPlugin, describe, env_name, installed


def main(out: TextIO | None = None) -> int:
    out = out or sys.stdout
    found = installed()
    for name in sorted(found):
        entry = found[name]
        if isinstance(entry, BrokenPlugin):
            print(f"{name}  (BROKEN: {entry.target} {entry.problem})\n", file=out)
            continue
        print(f"{name} — {entry.summary}", file=out)
        rows = describe(entry.settings)
        if not rows:
            print("    (no settings)", file=out)
        for setting, kind, meaning in rows:
            print(f"    {setting} ({kind}; {env_name(name, setting)}): {meaning}", file=out)
        print(file=out)
    print('Choose one with SCIM_GATEWAY_BACKEND=NAME (quick start) or adapter = "NAME" in [tenants.T.backend].',
          file=out)
    return 0
