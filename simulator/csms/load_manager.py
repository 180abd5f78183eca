"""Site load management in the embedded CSMS: a grid limit per site, shared among the site's
running transactions by a policy (equal share, FCFS, EDF), enforced with TxProfiles.

The `LoadManager` is a CSMS listener. At a charger's boot it installs a safe TxDefaultProfile
(the site limit split over all the site's connectors), which caps a new session until its own
TxProfile arrives. Whenever a transaction starts or ends, or an EV stops or resumes drawing
(SuspendedEV: full), it recomputes the allocation (models.load_management, the same code as
`fleetsim simulate`'s offline controller in simulator.site_policy) and sends SetChargingProfile
(TxProfile, W, stack level 1, with the transaction's id): lowered caps first, and only once the
chargers have accepted them the raised ones, never raising beyond what the caps actually in
force leave free. So the site stays under its limit through every change, except for a session
that starts before its TxProfile arrives, which draws at most the safe default meanwhile.

The CSMS does not know the cars: a session may draw up to its EVSE's rating (from the sites
file) and no less than 6 A per phase on AC. Under EDF a session's departure comes from a
fleetsim DataTransfer (vendorId "org.fleetsim", messageId "DepartureTime", data the ISO time,
or {"evseId": n, "departureTime": iso}); without one it is ordered after those with one, by
start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.load_management import (
    LoadPolicy,
    SessionNeed,
    ac_min_power_w,
    allocate,
    round_down,
    safe_default_w,
)
from simulator.csms.commands import CommandError
from simulator.csms.store import TxState
from simulator.fleet import charger_id
from simulator.scenario import Scenario, resolve_site

if TYPE_CHECKING:
    from simulator.csms.server import CsmsServer

log = logging.getLogger(__name__)

FLEETSIM_VENDOR_ID = "org.fleetsim"
DEPARTURE_MESSAGE_ID = "DepartureTime"
TX_PROFILE_STACK_LEVEL = 1
DEFAULT_PROFILE_STACK_LEVEL = 0
# A 1.6 charger may see our SetChargingProfile before it has read the StartTransaction answer
# that told it the transaction's id, and reject it: try again after these pauses (wall s).
REJECTED_RETRY_S = (0.2, 0.5, 1.0)
# After a push failed (timeout, connection lost), reallocate again this much later (wall s).
FAILED_RETRY_S = 5.0

_Kw = Annotated[float, Field(gt=0, le=1_000_000)]


class SiteEntry(BaseModel):
    """One site of a sites file: its grid limit, policy, chargers and their EVSEs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    grid_limit_kw: _Kw
    policy: Literal["equal_share", "fcfs", "edf"] = "equal_share"
    chargers: list[str] = Field(min_length=1)
    connectors: int = Field(1, ge=1, le=16, description="EVSEs per charger")
    evse_max_kw: _Kw | dict[str, _Kw] = Field(
        description="rating of each EVSE: one number for all chargers, or per charger id"
    )
    current: Literal["ac", "dc"] = "ac"
    phases: Literal[1, 2, 3] = 3
    voltage_v: float = Field(230.0, gt=0, le=1000)

    @model_validator(mode="after")
    def _complete(self) -> SiteEntry:
        if len(set(self.chargers)) != len(self.chargers):
            raise ValueError("chargers: a charger is listed twice")
        if isinstance(self.evse_max_kw, dict):
            missing = [c for c in self.chargers if c not in self.evse_max_kw]
            if missing:
                raise ValueError(f"evse_max_kw: no rating for charger {missing[0]!r}")
        return self

    @property
    def limit_w(self) -> float:
        return self.grid_limit_kw * 1000.0

    def evse_max_w(self, charger: str) -> float:
        rating = self.evse_max_kw
        return 1000.0 * (rating[charger] if isinstance(rating, dict) else rating)

    @property
    def min_w(self) -> float:
        """The least a session can charge at: 6 A per phase on AC (the EV's phases are not
        known to the CSMS: those wired), nothing on DC."""
        return ac_min_power_w(self.phases, self.voltage_v) if self.current == "ac" else 0.0


class SitesFile(BaseModel):
    """The sites file `fleetsim csms --sites` reads: {"sites": [SiteEntry, ...]}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sites: list[SiteEntry]

    @model_validator(mode="after")
    def _disjoint(self) -> SitesFile:
        names: set[str] = set()
        owner: dict[str, str] = {}
        for site in self.sites:
            if site.name in names:
                raise ValueError(f"two sites are named {site.name!r}")
            names.add(site.name)
            for charger in site.chargers:
                if charger in owner:
                    raise ValueError(
                        f"charger {charger!r} is in sites {owner[charger]!r} and {site.name!r}"
                    )
                owner[charger] = site.name
        return self


def read_sites_file(path: Path) -> list[SiteEntry]:
    """The sites of a sites file (JSON, or YAML of the same shape); ValueError naming the
    file and field on any problem."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"{path}: cannot read: {reason}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{path}: {where}invalid JSON/YAML: {problem}") from None
    try:
        return list(SitesFile.model_validate(data).sites)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            problems.append(f"{path}: {where}: {error['msg']}")
        raise ValueError("\n".join(problems)) from None


def sites_of(scenario: Scenario) -> list[SiteEntry]:
    """The sites with load management in a scenario, as the CSMS's load manager sees them."""
    entries = []
    for site in scenario.sites:
        lm = site.load_management
        if lm is None or site.chargers == 0:
            continue
        resolved = resolve_site(site)
        rating = resolved.rating
        entries.append(
            SiteEntry(
                name=resolved.name,
                grid_limit_kw=lm.grid_limit_kw,
                policy=lm.policy,
                chargers=[
                    charger_id(scenario.charger_id_pattern, resolved.name, i)
                    for i in range(site.chargers)
                ],
                connectors=resolved.connectors,
                evse_max_kw=rating.max_kw,
                current=rating.kind.value,
                phases=rating.phases,
                voltage_v=rating.voltage_v,
            )
        )
    return entries


def write_sites_file(scenario: Scenario, path: Path) -> int:
    """Write the sites file of a scenario's load-managed sites; returns how many sites."""
    entries = sites_of(scenario)
    document = {"sites": [entry.model_dump(mode="json") for entry in entries]}
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return len(entries)


def _epoch(stamp: str | None) -> float | None:
    """An OCPP timestamp as seconds since the epoch (naive: UTC); None if unreadable."""
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.strip().replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(slots=True, eq=False)
class _Session:
    """A running transaction as the load manager tracks it."""

    charger_id: str
    evse_id: int
    transaction_id: str
    started_s: float
    applied_w: float  # the cap in force on the charger as far as it has confirmed
    departure_s: float | None = None
    full: bool = False

    @property
    def key(self) -> str:
        return f"{self.charger_id}/{self.evse_id}"


@dataclass(slots=True, eq=False)
class _Site:
    """One site's running state."""

    entry: SiteEntry
    default_w: float
    sessions: dict[tuple[str, int], _Session] = field(default_factory=dict)
    dirty: bool = False
    worker: asyncio.Task[None] | None = None


class LoadManager:
    """Keeps each site of the sites file under its grid limit by pushing TxProfiles to its
    chargers as transactions come and go (see the module docstring for the rules).

    Listener methods run inside chargers' handlers and only record and schedule; the pushes run
    in one task per site, so allocations of a site never interleave. `idle()` waits until
    every site has caught up (tests, end of a run).
    """

    def __init__(self, server: CsmsServer, sites: Iterable[SiteEntry]) -> None:
        self.server = server
        self.sites: dict[str, _Site] = {}
        self._site_of: dict[str, _Site] = {}
        for entry in sites:
            connectors = entry.connectors * len(entry.chargers)
            site = _Site(entry, safe_default_w(entry.limit_w, connectors))
            self.sites[entry.name] = site
            for charger in entry.chargers:
                if charger in self._site_of:
                    raise ValueError(f"charger {charger!r} is in two sites")
                self._site_of[charger] = site
        # Chargers that accepted the safe TxDefaultProfile since their last boot.
        self._defaulted: set[str] = set()
        # Profile ids come from the CSMS's own sequence (never clashing with ids a person sends
        # through the API), one per charger (default) and per EVSE (TxProfile), kept so that a
        # new cap replaces the old profile by id.
        self._profile_ids: dict[tuple[str, int], int] = {}
        # DepartureTime announcements not yet claimed by a transaction: (charger, evse|None).
        self._departures: dict[tuple[str, int | None], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.pushes = 0
        self.failures = 0

    @classmethod
    def from_file(cls, server: CsmsServer, path: Path) -> LoadManager:
        """A load manager for the sites of a sites file (see `SitesFile`)."""
        return cls(server, read_sites_file(path))

    # -- what the tests and reports read -------------------------------------------------------

    def caps(self, site: str) -> dict[str, float]:
        """The cap in force (as confirmed by the chargers) on each running session of a site,
        keyed "charger/evse"."""
        return {s.key: s.applied_w for s in self.sites[site].sessions.values()}

    async def idle(self) -> None:
        """Return once no reallocation or profile push is running (a retry scheduled after a
        failed push is not waited for)."""
        while True:
            busy = [s.worker for s in self.sites.values() if s.worker is not None]
            busy = [w for w in busy if not w.done()]
            pending = [t for t in self._tasks if not t.done()]
            if not busy and not pending:
                return
            await asyncio.wait([*busy, *pending])

    async def close(self) -> None:
        """Cancel whatever is still running (the server is stopping)."""
        tasks = [*self._tasks, *(s.worker for s in self.sites.values() if s.worker is not None)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- CsmsListener ----------------------------------------------------------------------------

    def booted(self, charger_id: str, version: str) -> None:
        site = self._site_of.get(charger_id)
        if site is None:
            return
        self._defaulted.discard(charger_id)
        self._spawn(self._install_default(site, charger_id))
        if any(cid == charger_id for cid, _ in site.sessions):
            # Back after a lost connection with sessions still running: catch up on their caps.
            self._poke(site)

    def transaction_started(self, charger_id: str, tx: TxState) -> None:
        site = self._site_of.get(charger_id)
        if site is None or tx.evse_id is None:
            return
        evse = int(tx.evse_id)
        started = _epoch(tx.started_at)
        departure = self._departures.pop((charger_id, evse), None)
        if departure is None:
            departure = self._departures.pop((charger_id, None), None)
        # Until its TxProfile arrives the session runs under the safe default, if the charger
        # took it; otherwise nothing but its rating holds it.
        applied = (
            site.default_w if charger_id in self._defaulted else site.entry.evse_max_w(charger_id)
        )
        site.sessions[(charger_id, evse)] = _Session(
            charger_id,
            evse,
            tx.transaction_id,
            started if started is not None else 0.0,
            applied,
            departure,
        )
        self._poke(site)

    def transaction_ended(self, charger_id: str, tx: TxState) -> None:
        site = self._site_of.get(charger_id)
        if site is None or tx.evse_id is None:
            return
        slot = (charger_id, int(tx.evse_id))
        session = site.sessions.get(slot)
        if session is not None and session.transaction_id == tx.transaction_id:
            del site.sessions[slot]
            self._poke(site)

    def charging_state(self, charger_id: str, evse_id: int, state: str) -> None:
        site = self._site_of.get(charger_id)
        if site is None:
            return
        session = site.sessions.get((charger_id, evse_id))
        if session is None:
            return
        # SuspendedEV: the EV draws nothing (full); Charging: it draws again. SuspendedEVSE is
        # what a cap below the minimum does, and says nothing about the EV.
        full = {"SuspendedEV": True, "Charging": False}.get(state, session.full)
        if full != session.full:
            session.full = full
            self._poke(site)

    def data_transfer(
        self, charger_id: str, vendor_id: str, message_id: str | None, data: Any
    ) -> str | None:
        """A fleetsim DepartureTime announcement: "Accepted" (or "Rejected" if unreadable);
        None for anything else (not ours to answer)."""
        if vendor_id != FLEETSIM_VENDOR_ID:
            return None
        if message_id != DEPARTURE_MESSAGE_ID:
            return "UnknownMessageId"
        evse: int | None = None
        stamp: Any = data
        if isinstance(data, str) and data.lstrip().startswith("{"):
            try:
                stamp = json.loads(data)
            except json.JSONDecodeError:
                return "Rejected"
        if isinstance(stamp, Mapping):
            evse_value = stamp.get("evseId")
            evse = evse_value if isinstance(evse_value, int) else None
            stamp = stamp.get("departureTime")
        departure = _epoch(stamp) if isinstance(stamp, str) else None
        if departure is None:
            return "Rejected"
        site = self._site_of.get(charger_id)
        if site is None:
            return "Accepted"
        running = [
            s for (cid, e), s in site.sessions.items() if cid == charger_id and evse in (None, e)
        ]
        if running:
            # The announcement is for the newest session it can concern.
            session = max(running, key=lambda s: s.started_s)
            session.departure_s = departure
            if site.entry.policy == LoadPolicy.EDF:
                self._poke(site)
        else:
            self._departures[(charger_id, evse)] = departure
        return "Accepted"

    # -- pushing profiles ----------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _poke(self, site: _Site) -> None:
        site.dirty = True
        if site.worker is None or site.worker.done():
            site.worker = asyncio.get_running_loop().create_task(self._work(site))

    async def _work(self, site: _Site) -> None:
        while site.dirty:
            site.dirty = False
            try:
                complete = await self._reallocate(site)
            except Exception:
                log.exception("load manager: reallocating site %s failed", site.entry.name)
                complete = False
            connected = self.server.connections
            if (
                not complete
                and not site.dirty
                and any(s.charger_id in connected for s in site.sessions.values())
            ):
                # Something was refused or lost: try again a little later. (A charger that is
                # gone gets its turn when it boots again.)
                asyncio.get_running_loop().call_later(FAILED_RETRY_S, self._poke, site)

    def _profile_id(self, charger: str, evse: int) -> int:
        key = (charger, evse)
        pid = self._profile_ids.get(key)
        if pid is None:
            pid = self._profile_ids[key] = self.server.commands.new_id()
        return pid

    async def _install_default(self, site: _Site, charger: str) -> None:
        profile = {
            "id": self._profile_id(charger, 0),
            "purpose": "TxDefaultProfile",
            "kind": "Relative",
            "stack_level": DEFAULT_PROFILE_STACK_LEVEL,
            "unit": "W",
            "periods": [{"start_s": 0, "limit": site.default_w}],
        }
        try:
            reply = await self.server.commands.set_charging_profile(charger, 0, profile)
        except CommandError as exc:
            log.warning("load manager: %s: safe TxDefaultProfile not installed: %s", charger, exc)
            self.failures += 1
            return
        if reply.get("status") == "Accepted":
            self._defaulted.add(charger)
            self.pushes += 1
        else:
            log.warning("load manager: %s refused the safe TxDefaultProfile", charger)
            self.failures += 1

    async def _push(self, site: _Site, session: _Session, watts: float) -> bool:
        """Send one TxProfile; True once the charger accepted it (the cap is then in force)."""
        profile = {
            "id": self._profile_id(session.charger_id, session.evse_id),
            "purpose": "TxProfile",
            "kind": "Relative",
            "stack_level": TX_PROFILE_STACK_LEVEL,
            "unit": "W",
            "periods": [{"start_s": 0, "limit": watts}],
            "transaction_id": session.transaction_id,
        }
        commands = self.server.commands
        for pause in (*REJECTED_RETRY_S, None):
            if site.sessions.get((session.charger_id, session.evse_id)) is not session:
                return True  # it ended meanwhile: nothing left to cap
            try:
                reply = await commands.set_charging_profile(
                    session.charger_id, session.evse_id, profile
                )
            except CommandError as exc:
                log.warning("load manager: %s: TxProfile not installed: %s", session.key, exc)
                self.failures += 1
                return False
            if reply.get("status") == "Accepted":
                session.applied_w = watts
                self.pushes += 1
                return True
            if pause is not None:
                await asyncio.sleep(pause)
        log.warning("load manager: %s refused its TxProfile", session.key)
        self.failures += 1
        return False

    def _targets(self, site: _Site) -> dict[_Session, float]:
        entry = site.entry
        sessions = list(site.sessions.values())
        needs = [
            SessionNeed(
                s.key,
                0.0 if s.full else entry.evse_max_w(s.charger_id),
                entry.min_w,
                s.started_s,
                s.departure_s,
            )
            for s in sessions
        ]
        shares = allocate(LoadPolicy(entry.policy), entry.limit_w, needs)
        return {s: round_down(shares[s.key]) for s in sessions}

    async def _reallocate(self, site: _Site) -> bool:
        """One round: lower, wait for the answers, then raise within what the confirmed caps
        leave free. True if every change went through."""
        targets = self._targets(site)
        lowers = [(s, w) for s, w in targets.items() if w < s.applied_w]
        raises = [(s, w) for s, w in targets.items() if w > s.applied_w]
        done = await asyncio.gather(*(self._push(site, s, w) for s, w in lowers))
        complete = all(done)
        if raises:
            in_force = math.fsum(s.applied_w for s in site.sessions.values())
            free = site.entry.limit_w - in_force
            grants: list[tuple[_Session, float]] = []
            for session, watts in sorted(raises, key=lambda item: item[0].key):
                if site.sessions.get((session.charger_id, session.evse_id)) is not session:
                    continue
                grant = round_down(min(watts, session.applied_w + max(free, 0.0)))
                if grant < watts:
                    complete = False  # a lower has not gone through: raise only partly
                if grant > session.applied_w:
                    free -= grant - session.applied_w
                    grants.append((session, grant))
            done = await asyncio.gather(*(self._push(site, s, w) for s, w in grants))
            complete = complete and all(done)
        return complete
