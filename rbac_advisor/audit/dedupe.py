"""One record per API request out of per-stage audit events, in bounded memory. Pure.

A request is logged at up to three stages (B2) sharing one ``auditID``. The ID alone is
not a key: clients may set ``Audit-ID`` themselves, so a reused ID must not hide another
request. The key is (auditID, authenticated user, verb, request URI, requestReceivedTimestamp
as logged): every stage of a request carries the same values, and a client reusing an ID
for the same call later makes a request of its own.

Memory is bounded by assuming the stages of most requests lie close together in a log:
at most ``pending_max`` requests may be waiting for a later stage (in-flight requests)
and a counted request is remembered for the next ``done_max`` to ``2 * done_max``
requests, so a later duplicate stage is dropped. A request still waiting when the window
is full (a long watch, an exec session) is held aside, up to ``held_max`` of them, until
its final stage arrives (which is then counted) or the input ends (its most complete early
stage is). Past ``held_max``, the oldest held request is counted from its early stage and
remembered until its final stage arrives, for up to ``evicted_max`` such requests: a watch
is counted once however long it lasts. Only stages further apart than all of that are
counted twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, TypeVar

from rbac_advisor.audit.normalise import STAGE_RANK
from rbac_advisor.events import Event

T = TypeVar("T")
Key = tuple[str, str, str, str, str]
PENDING_MAX = 100_000
DONE_MAX = 250_000
HELD_MAX = 20_000
EVICTED_MAX = 250_000


def request_key(ev: Event) -> Key | None:
    """The identity of the request an event belongs to; None when it has no auditID.

    The authenticated user, not the impersonated one: the RequestReceived event is
    written before the impersonation filter runs and never names the impersonated user.
    A record with neither URI nor stage (GKE logs a request as one entry, or a long one
    as a first and a last under one operation id) is told apart by its attributes.
    """
    if not ev.audit_id:
        return None
    user = ev.impersonator.user if ev.impersonator is not None else ev.identity.user
    target = ev.uri if ev.uri or ev.stage else ev.access.display()
    return (ev.audit_id, user, ev.access.verb, target, ev.received)


def rank(stage: str) -> int:
    """How complete a stage's record is; a record without stage is complete."""
    return STAGE_RANK.get(stage, 2)


class Deduper(Generic[T]):
    """Collapse stages into one event per request; ``out`` receives (event, tag) pairs.

    A final stage (ResponseComplete, Panic, or none) is emitted at once; earlier stages
    wait in a bounded window and are emitted when their request's final stage never came
    (on eviction or :meth:`flush`), keeping the most complete stage seen.
    """

    def __init__(
        self,
        pending_max: int | None = None,
        done_max: int | None = None,
        evicted_max: int | None = None,
        held_max: int | None = None,
    ) -> None:
        """Set the window sizes (see module docstring; None: the module's defaults)."""
        self.out: list[tuple[Event, T]] = []
        self._pending: OrderedDict[Key, tuple[Event, T]] = OrderedDict()
        self._pending_max = PENDING_MAX if pending_max is None else pending_max
        self._done: set[int] = set()
        self._done_old: set[int] = set()
        self._done_max = DONE_MAX if done_max is None else done_max
        # Requests waiting for a later stage when the window was full, oldest first.
        self._held: dict[Key, tuple[Event, T]] = {}
        self._held_max = HELD_MAX if held_max is None else held_max
        # Requests counted from an early stage past held_max, waiting for their final
        # stage (insertion-ordered: the oldest is let go first when it is full).
        self._evicted: dict[int, None] = {}
        self._evicted_max = EVICTED_MAX if evicted_max is None else evicted_max

    def _mark(self, h: int) -> None:
        done = self._done
        done.add(h)
        if len(done) >= self._done_max:
            self._done_old = done
            self._done = set()

    def finalize(self, key: Key, h: int | None = None) -> bool:
        """Record that a final stage of ``key`` was counted elsewhere; False if already counted.

        Any earlier stage waiting for it is dropped. ``h`` is ``hash(key)`` when the caller
        has it already.
        """
        if h is None:
            h = hash(key)
        if h in self._done or h in self._done_old:
            return False
        if self._evicted and h in self._evicted:
            del self._evicted[h]  # its final stage: the request was counted already
            self._mark(h)
            return False
        if self._held:
            self._held.pop(key, None)
        if self._pending:
            self._pending.pop(key, None)
        self._mark(h)
        return True

    def mark(self, key: Key) -> None:
        """Record that the request ``key`` was counted elsewhere: its stages add nothing."""
        self._mark(hash(key))

    def note_recent(self, hashes: set[int]) -> None:
        """Take ``hashes`` (kept, not copied) as the requests counted last, elsewhere."""
        if hashes:
            self._done_old = self._done
            self._done = hashes

    def recent(self) -> set[int]:
        """Key hashes of the requests counted last (at least the last ``done_max``)."""
        return self._done | self._done_old | set(self._evicted)

    def forget(self) -> None:
        """Let go of the counted requests (the input has ended; waiting ones are kept)."""
        self._done.clear()
        self._done_old.clear()
        self._evicted.clear()

    def push(self, ev: Event, tag: T) -> None:
        """Add one stage event."""
        key = request_key(ev)
        if key is None:
            self.out.append((ev, tag))
            return
        h = hash(key)
        if h in self._done or h in self._done_old:
            return
        r = rank(ev.stage)
        evicted = self._evicted
        if evicted and h in evicted:
            if r >= 2:  # its final stage: the request was counted already
                del evicted[h]
                self._mark(h)
            return
        held = self._held
        if held and key in held:
            if r < 2:
                if r > rank(held[key][0].stage):
                    held[key] = (ev, tag)
                return
            del held[key]  # its final stage, counted below
        pending = self._pending
        if r >= 2:
            if pending:
                pending.pop(key, None)
            self._mark(h)
            self.out.append((ev, tag))
            return
        cur = pending.get(key)
        if cur is None:
            pending[key] = (ev, tag)
            if len(pending) > self._pending_max:
                old_key, old = pending.popitem(last=False)
                held[old_key] = old
                if len(held) > self._held_max:
                    oldest = next(iter(held))
                    self.out.append(held.pop(oldest))
                    evicted[hash(oldest)] = None
                    if len(evicted) > self._evicted_max:
                        del evicted[next(iter(evicted))]
        elif r > rank(cur[0].stage):
            pending[key] = (ev, tag)

    def flush(self) -> None:
        """Emit every request still waiting for a later stage (held ones first)."""
        for waiting in (self._held, self._pending):
            for key, item in waiting.items():
                self._mark(hash(key))
                self.out.append(item)
            waiting.clear()

    def discard_pending(self, counted: Iterable[set[int]]) -> None:
        """Drop the waiting requests whose key hash is in one of ``counted``.

        Their later stage was counted elsewhere (by a worker reading what followed).
        """
        sets = list(counted)
        if not sets:
            return
        for waiting in (self._held, self._pending):
            for key in [k for k in waiting if any(hash(k) in h for h in sets)]:
                del waiting[key]

    def latest_waiting(self) -> float | None:
        """The latest receive time of the requests waiting for a later stage, if any."""
        waiting = [ev.time for ev, _ in (*self._held.values(), *self._pending.values())]
        return max(waiting) if waiting else None

    def drain(self) -> list[tuple[Event, T]]:
        """Remove and return the waiting requests without emitting them (held ones first)."""
        items = [*self._held.values(), *self._pending.values()]
        self._held.clear()
        self._pending.clear()
        return items
