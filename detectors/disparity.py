"""Standing disparity in the preferred-tier share, with confidence and minimum support.

Method, in one sentence for a reviewer: a group is reported when, with the configured
confidence, its share of cheap compute is below ``threshold`` (0.8, the four-fifths rule) times
the share of the best-served group — that is, when the upper end of the group's Wilson interval
is below ``threshold`` times the lower end of the best group's interval — where the confidence is
Bonferroni-corrected for the number of groups compared in that evaluation, and only groups with
at least ``min_support`` ``place`` decisions stating a tier (and not the overflow group) take
part.

A finding closes when the group's point ratio is back at or above the threshold, so a group at
the boundary does not flap.

>>> from detectors.groups import EquityLedger
>>> ledger = EquityLedger(("team",), (), max_groups=8, max_attributes=8)
>>> for team, n, cheap in (("a", 400, 240), ("b", 400, 120)):
...     for i in range(n):
...         g = ledger.resolve({"team": team})[0]
...         g.decisions += 1
...         g.placed += 1
...         g.tiered += 1
...         g.preferred += i < cheap
>>> check = StandingDisparity(threshold=0.8, confidence=0.95, min_support=30)
>>> [(f.attribute, f.group, round(f.ratio, 3), f.reference_group) for f in check.evaluate(ledger)]
[('team', 'b', 0.5, 'a')]
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.fairness import wilson_interval, z_for_confidence
from detectors.groups import OVERFLOW_GROUP, EquityLedger

__all__ = ["DisparityFinding", "StandingDisparity"]


@dataclass(frozen=True, slots=True)
class DisparityFinding:
    """One group's share compared with the best-served group of the same attribute."""

    attribute: str
    group: str
    rate: float
    reference_group: str
    reference_rate: float
    ratio: float
    support: int
    significant: bool


class StandingDisparity:
    """Four-fifths check on ``preferred_rate`` gated by Wilson intervals."""

    def __init__(self, threshold: float, confidence: float, min_support: int) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
        z_for_confidence(confidence)  # validates
        if min_support < 1:
            raise ValueError(f"min_support must be >= 1, got {min_support}")
        self.threshold = threshold
        self.confidence = confidence
        self.min_support = min_support

    def evaluate(self, ledger: EquityLedger) -> list[DisparityFinding]:
        """Every supported group's comparison; ``significant`` marks the ones to report."""
        tables = []
        comparisons = 0
        for attribute, table in ledger.groups.items():
            rows = sorted((name, *s.rate_counts("preferred_rate"))
                          for name, s in table.items() if name != OVERFLOW_GROUP)
            supported = [row for row in rows if row[2] >= self.min_support]
            if len(supported) >= 2:
                tables.append((attribute, supported))
                comparisons += len(supported) - 1
        if not comparisons:
            return []
        alpha = (1.0 - self.confidence) / comparisons
        z = z_for_confidence(1.0 - alpha)
        findings: list[DisparityFinding] = []
        for attribute, supported in tables:
            best, best_k, best_n = max(supported, key=lambda r: (r[1] / r[2], r[0]))
            best_rate = best_k / best_n
            best_low = wilson_interval(best_k, best_n, z)[0]
            for name, k, n in supported:
                if name == best:
                    continue
                rate = k / n
                high = wilson_interval(k, n, z)[1]
                ratio = 1.0 if best_rate == 0 else rate / best_rate
                findings.append(DisparityFinding(
                    attribute, name, rate, best, best_rate, ratio, n,
                    high < self.threshold * best_low,
                ))
        return findings
