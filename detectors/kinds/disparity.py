"""``disparity``: a standing shortfall in cheap compute, with confidence
(:mod:`detectors.disparity`, the four-fifths rule gated by Wilson intervals).

Re-tested at every evaluation: it fires when the shortfall is significant and resolves when the
group's point ratio is back at or above the limit (or the group is now the best served).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from detectors.alerts import Alert, AlertKey, AlertKind, Where
from detectors.config import CoreConfig
from detectors.detector import CoreDetector, CoreView, Edge, Fire, Resolve
from detectors.disparity import DisparityFinding, StandingDisparity

__all__ = ["DISPARITY", "DisparityDetector"]

DISPARITY: Final = AlertKind("disparity", "PlacewatchPreferredTierDisparity", "warning")


class DisparityDetector(CoreDetector):
    """The standing check on every attribute's groups, every evaluation."""

    kinds = (DISPARITY,)

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config)
        self.check = StandingDisparity(config.disparity_ratio_threshold, config.confidence,
                                       config.min_group_support)

    def evaluate(self, core: CoreView, where: Where) -> Iterator[Edge]:
        limit = self.check.threshold
        ratios: dict[AlertKey, float] = {}
        book = core.alert_book
        for finding in self.check.evaluate(core.ledger):
            key: AlertKey = ("disparity", finding.attribute, finding.group, "preferred_rate")
            ratios[key] = finding.ratio
            if finding.significant and not book.is_open(key):
                yield Fire(key, disparity_alert(key, finding, limit, self.check.confidence,
                                                where))
        for held in book.open_keys:  # back at or above the limit (or now the best: ratio 1)
            ratio = ratios.get(held, 1.0)
            if held[0] == "disparity" and ratio >= limit:
                assert held[1] is not None and held[2] is not None
                yield Resolve(held, ratio, disparity_resolution(held[1], held[2], ratio, limit))


def disparity_alert(key: AlertKey, f: DisparityFinding, threshold: float, confidence: float,
                    where: Where) -> Alert:
    """``disparity``: a standing shortfall in cheap compute, with confidence."""
    return DISPARITY.firing(
        key, where, metric="preferred_rate_parity_ratio", value=round(f.ratio, 6),
        reference=threshold,
        summary=(f"{f.attribute}={f.group} gets cheap compute on {f.rate:.1%} of its placements "
                 f"vs {f.reference_rate:.1%} for {f.reference_group} (ratio {f.ratio:.2f} < "
                 f"{threshold:g}, n={f.support})."),
        details={"rate": round(f.rate, 6), "reference_group": f.reference_group,
                 "reference_rate": round(f.reference_rate, 6), "support": f.support,
                 "confidence": confidence})


def disparity_resolution(attribute: str, group: str, ratio: float, limit: float) -> str:
    """Why a ``disparity`` alert resolved: the ratio is at or above the limit again."""
    return (f"{attribute}={group} gets cheap compute at {ratio:.2f} of the best-served group's "
            f"rate (at or above {limit:g}).")
