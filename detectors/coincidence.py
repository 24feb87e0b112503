"""Populations that coincide: two groups of different attributes made of the same decisions.

``department=research`` and ``tenant_tier=free`` can be the same jobs. A change against them
then trips both groups' watches at once, and an on-call engineer would be paged twice for one
population. Each group keeps the event indexes of its latest :data:`RECENT` decisions; when an
alert is about to fire for a group while an alert of the same kind and metric is open for a
group of another attribute, the core compares the two windows. If at least ``threshold`` of
the smaller window's decisions are also in the other (``coincide_overlap``, 95% by default),
the second group is reported inside the first alert ("the same decisions as ...") instead of
as an alert of its own.

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

__all__ = ["MIN_DECISIONS", "RECENT", "shared"]

RECENT: Final = 256
"""Latest decisions per group compared (a ring of event indexes; a power of two)."""
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
