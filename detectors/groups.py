"""Per-group ledgers: which groups a decision belongs to and what each group received.

An *audited attribute* is a key of the event's ``attributes`` (``team``), or a configured pair
of keys audited together (``team*region``, group ``genomics*eu-west``). Each attribute has at
most ``max_groups`` groups; decisions for further values are counted in the overflow group
``OVERFLOW_GROUP`` so that memory and metric cardinality stay bounded.

>>> ledger = EquityLedger(attributes=("team",), attribute_pairs=(("team", "region"),),
...                       max_groups=2, max_attributes=8)
>>> [s.decisions for s in ledger.resolve({"team": "a", "region": "eu"})]
[0, 0]
>>> ledger.attribute_names
('team', 'team*region')
>>> ledger.resolve({"team": "b"})[0].name, ledger.resolve({"team": "c"})[0].name
('b', '__other__')
>>> ledger.overflowed["team"]
1
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from detectors.rates import RATE_BY_NAME, RATE_METRICS

if TYPE_CHECKING:
    from detectors.drift import RateWatch
    from detectors.forecast import ResidualWatch

__all__ = ["OVERFLOW_GROUP", "RATE_METRICS", "AttributeAdmission", "EquityLedger", "GroupStats",
           "group_name"]

RECENT: Final = 256
"""Latest decisions per group whose event indexes are kept (a ring; a power of two), so that
groups made of the same decisions can be told (:mod:`detectors.coincidence`)."""

OVERFLOW_GROUP: Final = "__other__"
"""Group that collects decisions for values beyond an attribute's group cap."""

WAIT_BUCKETS: Final = 64
_WAIT_BASE: Final = 1.25
_LOG_BASE: Final = math.log(_WAIT_BASE)


def wait_bucket(seconds: float) -> int:
    """Histogram bucket of a queue wait: 0 below 1 s, then one per factor of 1.25.

    >>> [wait_bucket(s) for s in (0.2, 1.0, 1.3, 3600.0)]
    [0, 1, 2, 37]
    """
    if seconds < 1.0:
        return 0
    return min(WAIT_BUCKETS - 1, int(math.log(seconds) / _LOG_BASE) + 1)


def wait_quantile(histogram: list[int], q: float) -> float | None:
    """The upper edge of the bucket holding quantile ``q`` (within a factor of 1.25).

    >>> hist = [0] * WAIT_BUCKETS
    >>> hist[wait_bucket(100.0)] = 95; hist[wait_bucket(3600.0)] = 5
    >>> round(wait_quantile(hist, 0.95)), round(wait_quantile(hist, 0.99))
    (108, 3852)
    """
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    seen = 0
    for bucket, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return 1.0 if bucket == 0 else _WAIT_BASE ** bucket
    return _WAIT_BASE ** (WAIT_BUCKETS - 1)


class GroupStats:
    """Running counts for one group of one audited attribute.

    Rates are ``numerator / denominator`` pairs so that confidence intervals and parity
    comparisons can use the support. ``decisions`` counts every placement event of the group
    (any action); ``preferred_rate`` is the share of its ``place`` decisions stating a tier that
    landed on a preferred (cheap) tier (undefined where schedulers send no tier); queue,
    reject and preemption rates are shares of all its decisions; ``deadline_miss_rate`` is
    over joined outcomes that state ``deadline_met``; ``old_hardware_rate`` is over its
    ``place`` decisions stating a hardware generation. Queue waits (of ``place`` decisions)
    go into a log-bucket histogram for quantiles; ``price_per_hour / requested cpu`` into a
    running mean (cost per requested vCPU-hour).

    Money, for the weekly report (:mod:`detectors.history`): a ``place`` decision's *spend* is
    its ``predicted_cost``, else ``price_per_hour × predicted_runtime_s / 3600``; it is summed
    over those on a preferred tier (``cheap_spend``) and over those on another stated tier
    (``premium_spend``). Joined outcomes add the actual and predicted cost where both are
    known (their forecast residuals are in the group's ``forecast`` watches).
    """

    __slots__ = (
        "alerts",
        "attribute",
        "cheap_spend_n",
        "cheap_spend_sum",
        "cost_actual_sum",
        "cost_predicted_sum",
        "deadline_missed",
        "deadline_n",
        "decisions",
        "drift",
        "drift_seen",
        "forecast",
        "hp_preferred",
        "hp_tiered",
        "hw_n",
        "hw_old",
        "name",
        "outcomes",
        "placed",
        "preempted",
        "preferred",
        "premium_spend_n",
        "premium_spend_sum",
        "queued",
        "recent",
        "rejected",
        "tiered",
        "tracked",
        "unit_price_n",
        "unit_price_sum",
        "wait_hist",
        "wait_n",
        "wait_sum",
    )

    def __init__(self, attribute: str, name: str, tracked: bool = True) -> None:
        self.attribute = attribute
        self.name = name
        self.tracked = tracked
        """False while its attribute awaits admission (:class:`AttributeAdmission`): it is
        counted, and neither compared nor shown nor given to the detectors."""
        self.decisions = 0
        self.placed = 0
        self.queued = 0
        self.preempted = 0
        self.rejected = 0
        self.tiered = 0
        self.preferred = 0
        self.wait_n = 0
        self.wait_sum = 0.0
        self.wait_hist = [0] * WAIT_BUCKETS
        self.hp_tiered = 0
        self.hp_preferred = 0
        self.hw_n = 0
        self.hw_old = 0
        self.unit_price_n = 0
        self.unit_price_sum = 0.0
        self.outcomes = 0
        self.deadline_n = 0
        self.deadline_missed = 0
        self.cheap_spend_n = 0
        self.cheap_spend_sum = 0.0
        self.premium_spend_n = 0
        self.premium_spend_sum = 0.0
        self.cost_actual_sum = 0.0
        self.cost_predicted_sum = 0.0
        self.drift: dict[str, RateWatch] | None = None
        self.drift_seen = 0
        """``decisions + deadline_n`` when the drift watches last looked: every rate's
        denominator grows only with them, so a group whose sum is unchanged has nothing new."""
        self.forecast: dict[str, ResidualWatch] | None = None
        self.alerts: tuple[tuple[str, str | None, str | None, str], ...] = ()
        """Alert conditions open on this group (kept by the core for audit sampling)."""
        self.recent = [0] * RECENT
        """Event indexes of the group's latest decisions, a ring filled in ``decisions``
        order (:mod:`detectors.coincidence`)."""

    def __getstate__(self) -> dict[str, object]:
        return {slot: getattr(self, slot) for slot in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for slot, value in state.items():
            setattr(self, slot, value)

    def rate_counts(self, metric: str) -> tuple[int, int]:
        """``(numerator, denominator)`` of one of :data:`~detectors.rates.RATE_METRICS`."""
        spec = RATE_BY_NAME.get(metric)
        if spec is None:
            raise ValueError(f"unknown rate metric {metric!r}; valid: {', '.join(RATE_METRICS)}")
        return spec.counts(self)

    @property
    def wait_p95_s(self) -> float | None:
        """95th percentile of queue wait (upper edge of its 1.25× bucket)."""
        return wait_quantile(self.wait_hist, 0.95)

    @property
    def cost_per_cpu_hour(self) -> float | None:
        """Mean price per hour per requested vCPU of its placements."""
        return self.unit_price_sum / self.unit_price_n if self.unit_price_n else None

    @property
    def mean_queue_wait_s(self) -> float | None:
        """Mean queue wait over decisions that carried ``submitted_at``."""
        return self.wait_sum / self.wait_n if self.wait_n else None


def group_name(*values: str) -> str:
    """The display name of a group, unambiguous whatever the attribute values hold.

    A backslash is doubled, a ``*`` inside a value is escaped (``*`` joins the values of a
    pair), and a value equal to the overflow group's name is escaped, so no real group can
    merge with another or with the overflow group.

    >>> group_name("genomics", "eu-west"), group_name("a*b", "c"), group_name("a", "b*c")
    ('genomics*eu-west', 'a\\\\*b*c', 'a*b\\\\*c')
    >>> group_name("__other__")
    '\\\\__other__'
    """
    parts = []
    for value in values:
        escaped = value.replace("\\", "\\\\").replace("*", "\\*")
        parts.append("\\" + escaped if escaped == OVERFLOW_GROUP else escaped)
    return "*".join(parts)


class AttributeAdmission:
    """Which keys an automatic ledger starts tracking, so one producer cannot take the slots.

    A key is admitted once it is on at least ``min_events`` placements *and* on at least
    ``min_share`` of the placements since it was first seen; a key longer than
    ``max_key_length`` never is. Until then its occurrences are counted, not tracked. Keys are
    counted with the Space-Saving algorithm (Metwally et al., 2005) in ``capacity`` counters: a
    new key takes the smallest counter and inherits its count as error, so memory is bounded
    whatever the number of distinct keys, and any key on more than 1/``capacity`` of the
    attribute occurrences is sure to hold a counter. Admission uses the count less its error,
    the occurrences it is sure of since it took its counter.

    >>> a = AttributeAdmission(min_events=3, min_share=0.5, max_key_length=8, capacity=4)
    >>> for keys in (["team", "junk"], ["team"], ["team"]):
    ...     a.events += 1
    ...     print([a.admit(key) for key in keys])
    [(False, None), (False, None)]
    [(False, None)]
    [(True, None)]
    >>> a.awaiting, a.admitted, a.admit("a-very-long-key"), a.too_long
    (3, ('team',), (False, None), 1)
    """

    __slots__ = ("_counters", "admitted", "awaiting", "capacity", "events", "max_key_length",
                 "min_events", "min_share", "too_long")

    def __init__(self, min_events: int, min_share: float, max_key_length: int,
                 capacity: int) -> None:
        if min_events < 1 or max_key_length < 1 or capacity < 1:
            raise ValueError("min_events, max_key_length and capacity must be >= 1")
        if not 0 <= min_share <= 1:
            raise ValueError(f"min_share must be in [0, 1], got {min_share!r}")
        self.min_events = min_events
        self.min_share = min_share
        self.max_key_length = max_key_length
        self.capacity = capacity
        self._counters: dict[str, list[int]] = {}
        """key -> [count, error, placements before it took the counter]."""
        self.events = 0
        self.admitted: tuple[str, ...] = ()
        self.awaiting = 0
        """Occurrences of keys not (yet) admitted."""
        self.too_long = 0
        """Occurrences of keys longer than ``max_key_length``."""

    def __contains__(self, key: str) -> bool:
        """Whether ``key`` holds a counter (it is waiting for admission)."""
        return key in self._counters

    def admit(self, key: str) -> tuple[bool, str | None]:
        """Count one occurrence of ``key`` on the current placement (add 1 to :attr:`events`
        once per placement first). Returns whether it is admitted now (it is then forgotten
        here: the caller tracks it) and the key that lost its counter to it, if one did."""
        if len(key) > self.max_key_length:
            self.too_long += 1
            return False, None
        counters = self._counters
        cell = counters.get(key)
        evicted = None
        if cell is None:
            if len(counters) < self.capacity:
                cell = counters[key] = [0, 0, self.events - 1]
            else:
                evicted = min(counters, key=lambda k: counters[k][0])
                floor = counters.pop(evicted)[0]
                cell = counters[key] = [floor, floor, self.events - 1]
        cell[0] += 1
        sure = cell[0] - cell[1]
        if sure >= self.min_events and sure >= self.min_share * (self.events - cell[2]):
            del counters[key]
            self.admitted += (key,)
            return True, evicted
        self.awaiting += 1
        return False, evicted

    def clear(self) -> None:
        """Forget every counter (nothing more can be admitted)."""
        self._counters.clear()

    def admit_at_end(self, slots: int) -> list[str]:
        """End of input: up to ``slots`` keys waiting that are on ``min_share`` of all the
        placements, however few (an input too short for ``min_events`` still has its
        attributes audited; a key on one event of many, even the last, still has not), most
        seen first, then first seen first."""
        counters = self._counters
        ranked = sorted(counters.items(), key=lambda kv: (kv[1][1] - kv[1][0], kv[1][2]))
        out = [key for key, (count, error, _) in ranked
               if count - error >= self.min_share * self.events][:max(slots, 0)]
        for key in out:
            del counters[key]
        self.admitted += tuple(out)
        return out

    def candidates(self, limit: int = 8) -> list[dict[str, object]]:
        """The keys most often seen and not admitted: ``key``, ``seen`` (occurrences it is
        sure of) and ``share`` (of the placements since it took its counter)."""
        ranked = sorted(self._counters.items(), key=lambda kv: (kv[1][1] - kv[1][0], kv[0]))
        return [{"key": key, "seen": count - error,
                 "share": round((count - error) / max(self.events - since, 1), 4)}
                for key, (count, error, since) in ranked[:limit]]


class EquityLedger:
    """Maps an event's attributes to the :class:`GroupStats` it updates.

    ``attributes=None`` audits the keys ``admission`` admits (:class:`AttributeAdmission`;
    every key at once without one), in order of admission, up to ``max_attributes``;
    occurrences of keys beyond that are counted in :attr:`untracked_keys`. While a key waits
    for admission (holds a counter), its groups are counted in :attr:`pending` tables of
    untracked :class:`GroupStats`; once admitted, those tables become its groups, so its
    counts cover every placement since its counter was taken (for a key on every placement,
    the first), and the detectors see it from then on.
    Each attribute keeps at most ``max_groups`` named groups plus the overflow group.
    :attr:`groups` maps each attribute to its groups by display name (:func:`group_name`).
    """

    def __init__(
        self,
        attributes: tuple[str, ...] | None,
        attribute_pairs: tuple[tuple[str, str], ...],
        max_groups: int,
        max_attributes: int,
        admission: AttributeAdmission | None = None,
    ) -> None:
        if max_groups < 1:
            raise ValueError(f"max_groups must be >= 1, got {max_groups}")
        if max_attributes < 1:
            raise ValueError(f"max_attributes must be >= 1, got {max_attributes}")
        self._auto = attributes is None
        self.admission = admission if self._auto else None
        self.pending: dict[str, tuple[dict[str, GroupStats], dict[str, GroupStats], list[int]]] \
            = {}
        """Keys awaiting admission: ``(value -> stats, display name -> stats, [overflowed])``."""
        self.pending_groups: list[GroupStats] = []
        """The untracked groups the last :meth:`resolve` counted the decision in."""
        self._max_groups = max_groups
        self._max_attributes = max_attributes
        self._singles: list[tuple[str, dict[str, GroupStats]]] = []
        self._pairs: list[tuple[str, str, str, dict[tuple[str, str], GroupStats]]] = []
        self.groups: dict[str, dict[str, GroupStats]] = {}
        self.overflowed: dict[str, int] = {}
        self.untracked_keys = 0
        self._audited_keys: tuple[str, ...] | None = None
        for key in attributes or ():
            self._add_single(key)
        for first, second in attribute_pairs:
            name = f"{first}*{second}"
            self.groups[name] = {}
            self.overflowed[name] = 0
            self._pairs.append((name, first, second, {}))

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """Audited attributes (single keys, then pairs) in a stable order."""
        return tuple(self.groups)

    @property
    def audited_key_list(self) -> tuple[str, ...]:
        """Event attribute keys that are audited, alone or in a pair, sorted (records and the
        shadow model keep only these)."""
        keys = self._audited_keys
        if keys is None:
            keys = self._audited_keys = tuple(sorted(set(
                [k for k, _ in self._singles] + [p for _, a, b, _ in self._pairs for p in (a, b)])))
        return keys

    def _add_single(self, key: str) -> None:
        self._audited_keys = None
        lookup, table, overflowed = self.pending.pop(key, ({}, {}, [0]))
        for stats in table.values():
            stats.tracked = True
        self.groups[key] = table
        self.overflowed[key] = overflowed[0]
        self._singles.append((key, lookup))
        # keep pairs after singles in attribute_names
        for name, _, _, _ in self._pairs:
            self.groups[name] = self.groups.pop(name)

    def _new_group(self, attribute: str, name: str) -> GroupStats:
        table = self.groups[attribute]
        if len(table) - (OVERFLOW_GROUP in table) >= self._max_groups:
            self.overflowed[attribute] += 1
            stats = table.get(OVERFLOW_GROUP)
            if stats is None:
                stats = table[OVERFLOW_GROUP] = GroupStats(attribute, OVERFLOW_GROUP)
            return stats
        stats = table[name] = GroupStats(attribute, name)
        return stats

    def admit_at_end(self) -> None:
        """End of input: admit the keys :meth:`AttributeAdmission.admit_at_end` names, while
        there are slots."""
        if self.admission is None:
            return
        for key in self.admission.admit_at_end(self._max_attributes - len(self._singles)):
            self._add_single(key)
        self.pending.clear()

    def _pending_group(self, key: str, value: str) -> GroupStats:
        """The untracked group a value of a key awaiting admission is counted in."""
        cell = self.pending.get(key)
        if cell is None:
            cell = self.pending[key] = ({}, {}, [0])
        lookup, table, overflowed = cell
        stats = lookup.get(value)
        if stats is not None:
            return stats
        if len(table) - (OVERFLOW_GROUP in table) >= self._max_groups:
            overflowed[0] += 1
            stats = table.get(OVERFLOW_GROUP)
            if stats is None:
                stats = table[OVERFLOW_GROUP] = GroupStats(key, OVERFLOW_GROUP, tracked=False)
            return stats
        stats = lookup[value] = table[group_name(value)] = GroupStats(key, group_name(value),
                                                                        tracked=False)
        return stats

    def resolve(self, attributes: dict[str, str]) -> list[GroupStats]:
        """The group ledgers one decision with these attributes updates."""
        if self._auto:
            admission = self.admission
            if admission is not None:
                admission.events += 1
                self.pending_groups = []
            for key in attributes:
                if key not in self.groups:
                    if len(self._singles) >= self._max_attributes:
                        self.untracked_keys += 1
                        continue
                    if admission is None:
                        self._add_single(key)
                        continue
                    admitted, evicted = admission.admit(key)
                    if evicted is not None:
                        self.pending.pop(evicted, None)
                    if admitted:
                        self._add_single(key)
                        if len(self._singles) >= self._max_attributes:
                            admission.clear()
                            self.pending.clear()
                            self.pending_groups = []
                    elif key in admission:
                        self.pending_groups.append(self._pending_group(key, attributes[key]))
        out: list[GroupStats] = []
        for key, lookup in self._singles:
            value = attributes.get(key)
            if value is not None:
                stats = lookup.get(value)
                if stats is None:
                    stats = self._new_group(key, group_name(value))
                    if stats.name != OVERFLOW_GROUP:
                        lookup[value] = stats
                elif stats.name == OVERFLOW_GROUP:
                    self.overflowed[key] += 1
                out.append(stats)
        for name, first, second, pairs in self._pairs:
            a = attributes.get(first)
            b = attributes.get(second)
            if a is not None and b is not None:
                stats = pairs.get((a, b))
                if stats is None:
                    stats = self._new_group(name, group_name(a, b))
                    if stats.name != OVERFLOW_GROUP:
                        pairs[(a, b)] = stats
                out.append(stats)
        return out
