"""``scim-gateway reconcile``: where a tenant's mail platform and the gateway's state disagree.

Three kinds of drift:

* ``unknown`` — a mailbox or list the gateway has no mapping for (made on the platform
  directly, or before the gateway was deployed). Entra's next filter for it adopts it;
  ``--fix`` adopts it now, the way the service does (a new SCIM id, nothing shadowed).
* ``dead_mapping`` — a mapping whose mailbox or list is gone (deleted on the platform).
  Entra gets 404 for the id it cached; ``--fix`` drops the mapping.
* ``attribute`` — an owned attribute differs from the value Entra last sent (a display
  name changed on the platform). Reported only: which side is right is for a person to
  decide, and Entra writes its value back the next time it syncs that object.

The backend is read one page at a time. Only the keys seen are kept, so that finding
dead mappings costs no backend read per mapping; a mapping whose key the scan did not
see is read once more before it is called dead, so an object created during the scan is
not dropped. Objects with a gateway write in flight (journal) are reported, never fixed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from adapters.base import Adapter, BackendError, GroupRecord, NotFound, Page, UserRecord
from gateway.backends import plugin
from gateway.clock import now_iso
from gateway.config import Settings
from gateway.ops.check import redact_dsn
from gateway.ops.output import Progress, table
from gateway.ops.settings_report import ConfigProblems, load
from gateway.provisioning.ownership import get_dotted
from gateway.scim.schema import GROUP_RESOURCE, USER_RESOURCE
from gateway.store.base import DuplicateKey, MappingScanner, StateStore, StoredResource
from gateway.wiring import make_adapter, make_store

USER, GROUP = USER_RESOURCE.name, GROUP_RESOURCE.name
PAGE_SIZE = 200
EXIT_IN_SYNC, EXIT_DRIFT, EXIT_CONFIG, EXIT_FAILED = 0, 1, 2, 3
KINDS = ("unknown", "dead_mapping", "attribute", "skipped_members")
_NOUNS = {USER: ("mailbox", "mailboxes"), GROUP: ("list", "lists")}


@dataclass
class Drift:
    kind: str
    resource_type: str
    key: str
    id: str | None = None
    attribute: str | None = None
    store_value: Any = None
    backend_value: Any = None
    action: str | None = None
    """What --fix did: ``adopted``, ``dropped``, or why it left the object alone."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "resource_type": self.resource_type, "key": self.key, "id": self.id}
        if self.kind == "attribute":
            out.update(attribute=self.attribute, store_value=self.store_value, backend_value=self.backend_value)
        if self.kind == "skipped_members":
            out["member_ids"] = self.store_value
        out["action"] = self.action
        return out

    def detail(self) -> str:
        if self.kind == "unknown":
            text = "in the backend, not mapped by the gateway"
        elif self.kind == "dead_mapping":
            text = "mapped, but gone from the backend"
        elif self.kind == "skipped_members":
            text = (f"members Entra sent that name no provisioned user (nested groups or unknown ids), not on "
                    f"the list: {', '.join(self.store_value)}")
        else:
            text = f"{self.attribute}: Entra sent {self.store_value!r}, the backend has {self.backend_value!r}"
        return f"{text} [{self.action}]" if self.action else text


@dataclass
class Report:
    tenant: str
    backend: str
    state: str
    fix: bool
    dry_run_tenant: bool
    scanned: dict[str, dict[str, int]] = field(default_factory=dict)
    drift: list[Drift] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        counts = {kind: sum(1 for d in self.drift if d.kind == kind) for kind in KINDS}
        counts["adopted"] = sum(1 for d in self.drift if d.action == "adopted")
        counts["dropped"] = sum(1 for d in self.drift if d.action == "dropped")
        return counts

    def remaining(self) -> int:
        """Drift still there after this run (all of it unless --fix repaired some)."""
        return sum(1 for d in self.drift if d.action not in ("adopted", "dropped", "already adopted"))

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant, "backend": self.backend, "state": self.state, "fix": self.fix,
            "dry_run_tenant": self.dry_run_tenant, "scanned": self.scanned, "summary": self.summary(),
            "drift": [d.to_json() for d in self.drift],
        }

    def render(self) -> str:
        lines = [f"tenant {self.tenant}: backend {self.backend}, state {self.state}"]
        if self.dry_run_tenant:
            lines.append("note: this tenant runs in dry-run, so objects it only simulated show as dead mappings")
        if self.drift:
            rows = [[d.kind, d.resource_type, d.key, d.id or "-", d.detail()] for d in self.drift]
            lines.append(table(["KIND", "TYPE", "KEY", "SCIM ID", "DETAIL"], rows))
        scanned = []
        for rt, counts in self.scanned.items():
            singular, plural = _NOUNS[rt]
            n, m = counts.get("backend", 0), counts.get("mappings", 0)
            scanned.append(f"{n} {singular if n == 1 else plural} against {m} mapping{'s' * (m != 1)}")
        s = self.summary()
        found = (f"{s['unknown']} unknown, {s['dead_mapping']} dead mapping{'s' * (s['dead_mapping'] != 1)}, "
                 f"{s['attribute']} attribute difference{'s' * (s['attribute'] != 1)}, "
                 f"{s['skipped_members']} list{'s' * (s['skipped_members'] != 1)} with skipped members"
                 ) if self.drift else "no drift"
        lines.append(f"scanned {', '.join(scanned)}: {found}")
        if self.fix:
            lines.append(f"fixed: {s['adopted']} adopted, {s['dropped']} mapping{'s' * (s['dropped'] != 1)} dropped;"
                         " attribute differences are left as they are")
        return "\n".join(lines)


class Reconciler:
    def __init__(self, tenant: str, adapter: Adapter, store: StateStore, scanner: MappingScanner, *,
                 fix: bool, progress: Progress, page_size: int | None = None) -> None:
        self.tenant = tenant
        self.adapter = adapter
        self.store = store
        self.scanner = scanner
        self.fix = fix
        self.progress = progress
        self.page_size = max(1, min(page_size or PAGE_SIZE, adapter.capabilities.max_page_size))
        self.drift: list[Drift] = []
        self.scanned: dict[str, dict[str, int]] = {}
        self._in_flight_ids: set[str] = set()
        self._in_flight_names: set[tuple[str, str]] = set()

    async def run(self) -> tuple[dict[str, dict[str, int]], list[Drift]]:
        pending = await self.store.journal_pending(self.tenant)
        self._in_flight_ids = {e.resource.id for e in pending}
        self._in_flight_names = {(e.resource_type, e.natural_key) for e in pending}
        types = [USER, GROUP] if self.adapter.capabilities.groups else [USER]
        for rt in types:
            seen = await self._backend_side(rt)
            await self._store_side(rt, seen)
        return self.scanned, self.drift

    async def _page(self, rt: str, offset: int) -> Page[UserRecord] | Page[GroupRecord]:
        if rt == USER:
            return await self.adapter.find_users(None, offset, self.page_size)
        return await self.adapter.find_groups(None, offset, self.page_size)

    async def _backend_side(self, rt: str) -> set[str]:
        seen: set[str] = set()
        offset = total = 0
        label = _NOUNS[rt][1]
        while True:
            page = await self._page(rt, offset)
            total = page.total
            # A listing that shifts under the scan may repeat an object: judge it once.
            fresh = [r for r in page.items if r.key not in seen]
            keys = [r.key for r in fresh]
            mapped = await self.store.get_many_by_keys(self.tenant, rt, keys) if keys else {}
            for record in fresh:
                seen.add(record.key)
                stored = mapped.get(record.key)
                if stored is None:
                    await self._unknown(rt, record)
                else:
                    self._compare(rt, record, stored)
            offset += len(page.items)
            self.progress.update(label, offset, page.total)
            if not page.items or offset >= page.total:
                break
        self.progress.update(label, offset, total, force=True)
        self.progress.done()
        self.scanned.setdefault(rt, {})["backend"] = len(seen)
        return seen

    def _natural_key(self, rt: str, record: UserRecord | GroupRecord) -> str:
        name = record.attributes.get("userName" if rt == USER else "displayName")
        return str(name if isinstance(name, str) else record.key).lower()

    async def _unknown(self, rt: str, record: UserRecord | GroupRecord) -> None:
        drift = Drift("unknown", rt, record.key)
        self.drift.append(drift)
        if (rt, self._natural_key(rt, record)) in self._in_flight_names:
            drift.action = "left alone: a gateway write for it is in flight"
            return
        if not self.fix:
            return
        stamp = now_iso()
        stored = StoredResource(id=str(uuid.uuid4()), resource_type=rt, backend_key=record.key,
                                created=stamp, last_modified=stamp)
        try:
            await self.store.insert(self.tenant, stored)
        except DuplicateKey:
            # The running gateway adopted it between the scan and now.
            existing = await self.store.get_by_key(self.tenant, rt, record.key)
            drift.id = existing.id if existing is not None else None
            drift.action = "already adopted"
            return
        drift.id, drift.action = stored.id, "adopted"

    def _compare(self, rt: str, record: UserRecord | GroupRecord, stored: StoredResource) -> None:
        for path, sent in sorted(stored.sent.items()):
            actual = get_dotted(record.attributes, path)
            # A backend that only changed the case is not drift: the gateway shows the sent value.
            if isinstance(actual, str) and actual.lower() == sent.lower():
                continue
            self.drift.append(Drift("attribute", rt, record.key, stored.id, path, sent, actual))

    async def _exists(self, rt: str, key: str) -> bool:
        try:
            if rt == USER:
                await self.adapter.get_user(key)
            else:
                await self.adapter.get_group(key)
        except NotFound:
            return False
        return True

    async def _store_side(self, rt: str, seen: set[str]) -> None:
        after: str | None = None
        checked = 0
        while True:
            batch = await self.scanner.iter_mappings(self.tenant, rt, after, self.page_size)
            if not batch:
                break
            for stored in batch:
                checked += 1
                skipped = stored.notes.get("skipped_members")
                if skipped:
                    # Not repairable here: the platform cannot hold them; listed so an admin can see them.
                    self.drift.append(Drift("skipped_members", rt, stored.backend_key, stored.id,
                                            store_value=list(skipped), action="left alone"))
                if stored.backend_key in seen or (stored.backend_key and await self._exists(rt, stored.backend_key)):
                    continue
                drift = Drift("dead_mapping", rt, stored.backend_key, stored.id)
                self.drift.append(drift)
                if stored.id in self._in_flight_ids:
                    drift.action = "left alone: a gateway write for it is in flight"
                elif self.fix and not seen:
                    # An empty listing more often means the wrong backend (URL, API key of another
                    # platform) than a platform emptied by hand; dropping every id Entra holds is
                    # not something to do on that evidence.
                    drift.action = f"left alone: the backend lists no {_NOUNS[rt][1]} at all; check its URL"
                elif self.fix:
                    await self.store.delete(self.tenant, rt, stored.id)
                    drift.action = "dropped"
            after = batch[-1].id
            self.progress.update(f"{rt} mappings", checked, None)
        self.progress.update(f"{rt} mappings", checked, None, force=True)
        self.progress.done()
        self.scanned.setdefault(rt, {})["mappings"] = checked


def _store_problem(settings: Settings) -> str | None:
    """Why reconciling against this state setting would be meaningless, or None."""
    state = settings.state
    if state == "memory":
        return ("SCIM_GATEWAY_STATE: 'memory' lives inside the gateway process and is gone when it stops — "
                "point reconcile at the persistent store the gateway uses (sqlite:///… or postgresql://…)")
    if state.startswith("sqlite://"):
        path = Path(state.removeprefix("sqlite:///") or ":memory:")
        if str(path) == ":memory:" or not path.exists():
            return (f"SCIM_GATEWAY_STATE: the SQLite file {path} does not exist — give the file the gateway "
                    "serves from (run reconcile where that file is)")
    return None


async def reconcile(settings: Settings, tenant: str, adapter: Adapter, *, fix: bool, progress: Progress) -> Report:
    tenant_settings = settings.effective_tenants()[tenant]
    store = make_store(settings.state)
    if not isinstance(store, MappingScanner):
        raise RuntimeError(f"the {type(store).__name__} cannot list its mappings yet, so it cannot be reconciled")
    report = Report(tenant, adapter.name, redact_dsn(settings.state), fix, tenant_settings.dry_run)
    try:
        await store.open()
        await adapter.start()
        reconciler = Reconciler(tenant, adapter, store, store, fix=fix, progress=progress)
        report.scanned, report.drift = await reconciler.run()
    finally:
        progress.done()
        await adapter.close()
        await store.close()
    return report


def main(tenant: str, config: Path | None, *, as_json: bool = False, fix: bool = False,
         out: TextIO | None = None, err: TextIO | None = None, progress: bool | None = None) -> int:
    """Exit status: 0 in sync, 1 drift remains, 2 configuration problem, 3 the run failed."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = load(config)
    except ConfigProblems as problems:
        print("\n".join(problems.lines), file=err)
        return EXIT_CONFIG
    tenants = settings.effective_tenants()
    if tenant not in tenants:
        print(f"--tenant: no tenant named {tenant!r} — use one of: {', '.join(sorted(tenants))}", file=err)
        return EXIT_CONFIG
    backend = tenants[tenant].backend.adapter
    if not plugin(backend).keeps_data:
        # Its data lives in the serving process: from here every mapping would look dead.
        print(f"tenants.{tenant}.backend.adapter: {backend!r} lives inside the gateway process — there is no "
              "platform outside it to reconcile with", file=err)
        return EXIT_CONFIG
    problem = _store_problem(settings)
    if problem is not None:
        print(problem, file=err)
        return EXIT_CONFIG
    try:
        adapter = make_adapter(tenant, tenants[tenant], from_env=settings.token is not None)
    except ValueError as exc:
        print(f"tenants.{tenant}.backend: {exc} — correct the tenant's backend settings", file=err)
        return EXIT_CONFIG
    bar = Progress(err, enabled=progress)
    try:
        report = asyncio.run(reconcile(settings, tenant, adapter, fix=fix, progress=bar))
    except Exception as exc:  # an unreachable backend or store, reported as such rather than as a traceback
        kind = "backend" if isinstance(exc, BackendError) else type(exc).__name__
        print(f"reconcile failed ({kind}): {exc}", file=err)
        return EXIT_FAILED
    if as_json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False), file=out)
    else:
        print(report.render(), file=out)
    return EXIT_DRIFT if report.remaining() else EXIT_IN_SYNC
