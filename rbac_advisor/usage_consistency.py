"""Whether a usage model agrees with itself. Pure.

A model holds the same requests several times over: as uses (entries with their counts,
times and days), as requests per user, tool and day (``activity``), as requests per source,
and as totals. Every model the tool builds, and every merge of them, keeps these in step; a
saved model that does not was edited or damaged, and the subjects' totals, tools and active
days it would report would contradict its uses. :func:`contradiction` names the first such
disagreement.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from operator import floordiv, gt, ne

from rbac_advisor.events import Decision
from rbac_advisor.usage import DAY, Usage
from rbac_advisor.usage_entries import Entries, UseColumns, gc_paused


def contradiction(usage: Usage) -> str | None:
    """The first way ``usage`` contradicts itself, as a phrase; None when it does not."""
    with gc_paused():  # many small acyclic objects: a collection would walk the model too
        return next(_contradictions(usage), None)


def _contradictions(usage: Usage) -> Iterator[str]:
    if usage.sources and sum(s.requests for s in usage.sources) != usage.requests:
        yield "the requests of its sources do not add up to requests"
    for s in usage.sources:  # a source names its first skipped record exactly when it skipped
        if s.requests and not s.lines:
            yield f"its source {s.path!r} counts requests but read no record"
        if s.skipped and not s.first_error:
            yield f"its source {s.path!r} skipped records but names none of them"
        if s.first_error and not s.skipped:
            yield f"its source {s.path!r} names a skipped record but skipped none"
    if sum(usage.activity.values()) != usage.requests - usage.unauthenticated:
        yield "its activity (requests per user, tool and day) does not add up to requests"
    outside = _activity_outside(usage)
    if outside is not None:
        yield outside
    entries = Entries.of(usage.entries)
    uses = entries.use_columns()
    if not _uses_plausible(usage, uses):
        window = repeat(usage.start), repeat(usage.end)
        problems = map(_use_problem, uses.counts, uses.firsts, uses.lasts, uses.days, *window)
        for n, problem in enumerate(problems):
            if problem is not None:
                user = entries.identities[uses.ii[n]].user
                a = entries.accesses[uses.ai[n]]
                what = a.path or "/".join(p for p in (a.resource, a.subresource) if p)
                yield f"the use of {what or '-'} ({a.verb}) by {user!r} {problem}"
    problem = _against_activity(usage, entries, uses)
    if problem is not None:
        yield problem


def _activity_outside(usage: Usage) -> str | None:
    """Activity on a day outside the model's window (day 0 also holds untimed requests)."""
    start, end = usage.start, usage.end
    low = None if start is None else start // DAY
    high = None if end is None else end // DAY
    for user, tool, day in usage.activity:
        if day and (low is None or high is None or not low <= day <= high):
            return f"the activity of {user!r} with {tool!r} has a day outside the model's window"
    return None


def _uses_plausible(usage: Usage, uses: UseColumns) -> bool:
    """Quick checks of every use at once: True when none can be wrong."""
    counts, firsts, lasts, days = uses.counts, uses.firsts, uses.lasts, uses.days
    if any(map(gt, map(len, days), counts)):
        return False
    # A use's days run from the day of its first time to the day of its last, both
    # included. Uses without a time, which have no day, and a time before 1970 beside a
    # record without one (``last`` 0) are looked at one by one.
    if not (all(days) and all(firsts) and all(lasts)):
        return False
    held = {id(d): d for d in days}  # uses share their sets of days
    lows = {k: min(d) for k, d in held.items()}
    highs = {k: max(d) for k, d in held.items()}
    # Compared a row at a time, with no list of a model's length beside the model.
    if any(map(ne, map(lows.__getitem__, map(id, days)), map(floordiv, firsts, repeat(DAY)))):
        return False
    if any(map(ne, map(highs.__getitem__, map(id, days)), map(floordiv, lasts, repeat(DAY)))):
        return False
    if not firsts:  # no use at all
        return True
    start, end = usage.start, usage.end  # every use has both times here
    return start is not None and end is not None and min(firsts) >= start and max(lasts) <= end


def _use_problem(
    count: int,
    first: float,
    last: float,
    days: frozenset[int],
    start: float | None,
    end: float | None,
) -> str | None:
    """What is wrong with one use, if anything."""
    if len(days) > count:
        return "has more active days than requests"
    if not first:  # no record of the use gave a time; or 0 is an edited one
        if last:
            return "has a last time but no first time"
        return "has active days but no time" if days else None
    # From here the use has a first time (``last`` 0 only beside a time before 1970).
    if first // DAY not in days or (last and last // DAY not in days):
        return "lacks the day of its first or last time"
    if min(days) < first // DAY or (last and max(days) > last // DAY):
        return "has a day outside its first and last times"
    if start is None or first < start or (last and (end is None or last > end)):
        return "has a time outside the model's window"
    return None


def _against_activity(usage: Usage, entries: Entries, uses: UseColumns) -> str | None:
    """The requests per user, tool and day against the uses of each user with each tool.

    Each request adds one to its user's activity with its tool on its day, and to the
    count of one use of that user and tool or more (a server-side apply that creates is
    authorized twice; the checks of an impersonator are uses of the impersonator, made
    for another's request). So a user's activity with a tool is at least the count of
    each of its own uses and at most the sum of all of them, and it holds every day of its
    own uses. Users are taken one at a time, in order, in the uses and in the activity:
    nothing is held per user beyond the one at hand.
    """
    own = [not a.verb.startswith("impersonate") for a in entries.accesses]
    # A request leaves at most one use refused or undecided: its own (an allowed one may
    # add a refused check; a refused impersonation is one refused check).
    refused = [d is Decision.FORBID for d in uses.decisions]
    undecided = [d is Decision.UNKNOWN for d in uses.decisions]
    users = [i.user for i in entries.identities]  # sorted: a user's uses are one run
    activity = usage.activity
    keys = sorted(activity)  # (user, tool, day): by user first, as the uses
    tools = uses.tools
    k = 0  # the next activity key
    user = None
    total: dict[int, int] = {}  # per tool: the counts of every use
    most: dict[int, int] = {}  # per tool: the largest count of an own use
    held: dict[int, dict[int, frozenset[int]]] = {}  # per tool: own uses' sets of days
    unsettled: dict[int, int] = {}  # per tool: the counts of refused and undecided uses
    columns = zip(uses.ii, uses.ti, uses.ai, uses.di, uses.counts, uses.days, strict=True)
    for i, t, a, d, count, days in columns:
        if users[i] != user:
            if user is not None:
                counted = (total, most, held, unsettled)
                k, problem = _user_against(user, counted, keys, k, activity, tools)
                if problem is not None:
                    return problem
                total, most, held, unsettled = {}, {}, {}, {}
            user = users[i]
        total[t] = total.get(t, 0) + count
        if refused[d] or (undecided[d] and own[a]):
            unsettled[t] = unsettled.get(t, 0) + count
        if own[a]:
            if count > most.get(t, 0):
                most[t] = count
            sets = held.get(t)
            if sets is None:
                held[t] = {id(days): days}
            else:
                sets[id(days)] = days
    if user is not None:
        k, problem = _user_against(user, (total, most, held, unsettled), keys, k, activity, tools)
        if problem is not None:
            return problem
    if k < len(keys):
        return _no_use(*keys[k][:2])
    return _unknown_in_the_rest(usage, keys)


def _user_against(
    user: str,
    counted: tuple[
        dict[int, int], dict[int, int], dict[int, dict[int, frozenset[int]]], dict[int, int]
    ],
    keys: list[tuple[str, str, int]],
    k: int,
    activity: Mapping[tuple[str, str, int], int],
    tools: Sequence[str],
) -> tuple[int, str | None]:
    """One user's uses against its activity, from ``keys[k]`` on.

    ``counted``: per tool, the total count, the largest own count, the own uses' days and
    the count of refused and undecided uses. Returns the next key and what disagrees.
    """
    total, most, held, unsettled = counted
    if k < len(keys) and keys[k][0] < user:
        return k, _no_use(*keys[k][:2])
    made: dict[str, int] = {}  # requests per tool
    while k < len(keys) and keys[k][0] == user:
        key = keys[k]
        made[key[1]] = made.get(key[1], 0) + activity[key]
        k += 1
    used = {tools[t] for t in total}
    unused = next((tool for tool in made if tool not in used), None)
    if unused is not None:
        return k, _no_use(user, unused)
    for t, largest in most.items():
        tool = tools[t]
        n = made.get(tool)
        if n is None:
            return k, f"{user!r} has uses with {tool!r} but no activity"
        if not largest <= n <= total[t]:
            return k, f"the activity of {user!r} with {tool!r} does not match its uses' counts"
        if not all((user, tool, d) in activity for ds in held[t].values() for d in ds):
            return k, f"the activity of {user!r} with {tool!r} lacks days of its uses"
    for t, n in unsettled.items():
        if n > made.get(tools[t], 0):
            tool = tools[t]
            return k, f"{user!r} has more refused and undecided uses with {tool!r} than requests"
    return k, None


def _unknown_in_the_rest(usage: Usage, keys: list[tuple[str, str, int]]) -> str | None:
    """Client addresses and sessions of a user and tool without activity."""

    def active(user: str, tool: str) -> bool:
        at = bisect_left(keys, (user, tool))
        return at < len(keys) and keys[at][:2] == (user, tool)

    for user, tool in usage.client_ips:
        if not active(user, tool):
            return f"its client addresses name {user!r} with {tool!r}, who made no request"
    start, end = usage.start, usage.end
    for s in usage.sessions:
        if not active(s.user, s.tool):
            return f"a session names {s.user!r} with {s.tool!r}, who made no request"
        if s.time and (start is None or end is None or not start <= s.time <= end):
            return f"a session of {s.user!r} lies outside the model's window"
    return None


def _no_use(user: str, tool: str) -> str:
    return f"its activity names requests of {user!r} with {tool!r} that no use holds"
