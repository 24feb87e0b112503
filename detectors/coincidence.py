"""Populations that coincide: two groups of different attributes made of the same decisions.

``department=research`` and ``tenant_tier=free`` can be the same jobs. A change against them
then trips both groups' watches at once, and an on-call engineer would be paged twice for one
population. Each group keeps the event indexes of its latest :data:`RECENT` decisions; when an
alert is about to fire for a group while an alert of the same kind and metric is open for a
group of another attribute, the core compares the two windows. If, over the stretch of time
both cover, at least ``threshold`` of each window's decisions are also in the other
(``coincide_overlap``, 95% by default), the second group is reported inside the first alert
("the same decisions as ...") instead of as an alert of its own (:class:`SamePopulation`).

>>> a, b = [0] * RECENT, [0] * RECENT
>>> for i in range(300):
...     a[i % RECENT] = i
...     if i % 50:               # b holds 98% of a's decisions
...         b[i % RECENT] = i
>>> round(shared(a, 300, b, 294), 2)
0.98
>>> shared(a, 300, b, 10) is None         # too few decisions in b to judge
True
>>> whole, part = [0] * RECENT, [0] * RECENT
>>> for i in range(1200):              # part is every fourth of whole's decisions: a subset
...     whole[i % RECENT] = i
...     if i % 4 == 0:
...         part[(i // 4) % RECENT] = i
>>> shared(whole, 1200, part, 300)
0.25
"""

from __future__ import annotations

from typing import Final

import msgspec

from detectors.alerts import Alert, AlertBook, AlertKey, Where, iso
from detectors.findings import same_population
from detectors.groups import RECENT, EquityLedger

__all__ = ["MIN_DECISIONS", "RECENT", "SamePopulation", "promoted", "shared"]

MIN_DECISIONS: Final = 64
"""Decisions both groups must have before they can be judged to coincide."""


def shared(a: list[int], a_seen: int, b: list[int], b_seen: int) -> float | None:
    """How far two groups' latest decisions are the same ones: the smaller of the share of
    ``a``'s decisions that ``b`` also holds and the share of ``b``'s that ``a`` holds, each
    counted over the stretch of time both windows cover (so a group is not taken for its
    superset: all of ``team=genomics`` is in ``department=research``, not the other way).

    ``a`` and ``b`` are rings of :data:`RECENT` event indexes, ``a_seen`` and ``b_seen`` how
    many decisions each group has had in all (so how much of its ring is filled). None when
    either has fewer than :data:`MIN_DECISIONS` there.
    """
    window_a, window_b = a[:min(a_seen, RECENT)], b[:min(b_seen, RECENT)]
    if min(len(window_a), len(window_b)) < MIN_DECISIONS:
        return None
    one = _held(window_a, window_b)
    other = _held(window_b, window_a)
    if one is None or other is None:
        return None
    return min(one, other)


def _held(window: list[int], other: list[int]) -> float | None:
    """Share of ``window``'s decisions since ``other``'s oldest that ``other`` holds."""
    start = min(other)
    inside = [i for i in window if i >= start]
    if len(inside) < MIN_DECISIONS:
        return None
    members = set(other)
    return sum(1 for i in inside if i in members) / len(inside)


class SamePopulation:
    """Which alerts are reported inside another open alert (the merged group -> the alert it
    is reported in), and the decisions to merge, keep merged, or let go.

    A group is merged into an open alert of the same kind and metric on another attribute
    only while that alert's firing edge is still queued (they fired in the same batch), so the
    one edge written names both. It stays merged while that alert is open and the two still
    coincide; it is let go when its own condition clears, or when they diverge (it then fires
    on its own); when the alert it is in resolves, the core promotes it to an alert of its own
    if its condition still holds.
    """

    __slots__ = ("_merged", "merged", "threshold")

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        """``coincide_overlap``; above 1, nothing is ever merged."""
        self._merged: dict[AlertKey, tuple[AlertKey, Alert]] = {}
        self.merged = 0
        """Alerts reported inside another one so far."""

    def absorb(self, key: AlertKey, alert: Alert, ledger: EquityLedger, book: AlertBook,
               queued: list[Alert]) -> bool:
        """True when ``alert`` is reported inside another open alert (so it is not fired)."""
        if self.threshold > 1 or key[1] is None:
            return False
        held = self._merged.get(key)
        if held is not None:
            share = _share(key, held[0], ledger)
            if book.is_open(held[0]) and share is not None and share >= self.threshold:
                return True
            del self._merged[key]  # diverged, or what it was in has gone: on its own now
        pending = {id(edge) for edge in queued if edge.state == "firing"}
        best: tuple[AlertKey, float] | None = None
        for other in book.open_keys:
            if other[0] != key[0] or other[3] != key[3] or other[1] in (None, key[1]):
                continue
            edge = book.firing(other)
            if edge is None or id(edge) not in pending:
                continue
            share = _share(key, other, ledger)
            if share is not None and share >= self.threshold and (best is None or
                                                                  share > best[1]):
                best = (other, share)
        if best is None:
            return False
        primary, share = best
        fired = book.firing(primary)
        assert fired is not None and key[1] is not None and key[2] is not None
        named = same_population(fired, key[1], key[2], share, alert.value, alert.reference)
        book.amend(primary, named)
        queued[:] = [named if edge is fired else edge for edge in queued]
        self._merged[key] = (primary, alert)
        self.merged += 1
        return True

    def forget(self, key: AlertKey) -> None:
        """``key``'s own condition cleared: it is no longer reported anywhere."""
        self._merged.pop(key, None)

    def released(self, primary: AlertKey) -> list[tuple[AlertKey, Alert]]:
        """The alert ``primary`` resolved: the groups reported inside it, with the alert each
        would have fired (the core fires those whose condition still holds)."""
        out = [(alias, alert) for alias, (held, alert) in self._merged.items()
               if held == primary]
        for alias, _ in out:
            del self._merged[alias]
        return out


def _share(a: AlertKey, b: AlertKey, ledger: EquityLedger) -> float | None:
    assert a[1] is not None and a[2] is not None and b[1] is not None and b[2] is not None
    mine = ledger.groups.get(a[1], {}).get(a[2])
    theirs = ledger.groups.get(b[1], {}).get(b[2])
    if mine is None or theirs is None:
        return None
    return shared(mine.recent, mine.decisions, theirs.recent, theirs.decisions)


def promoted(alert: Alert, where: Where, primary: AlertKey) -> Alert:
    """The alert a merged group fires when the alert it was reported in resolves."""
    return msgspec.structs.replace(
        alert, decision_id=where.decision_id, event_index=where.event_index, at=iso(where.at),
        summary=f"{alert.summary} (Reported inside the alert for {primary[1]}={primary[2]} "
                "until that resolved; the value is the one at detection.)")
