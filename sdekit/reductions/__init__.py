"""Streaming, mergeable reductions: summaries of samples that shards compute separately and merge in shard order.

Every reduction has ``update(x)`` (absorb a batch (n, d) in place), ``merge(other)`` (a new summary of both),
``result()`` (a frozen dataclass, or a `CheckResult` for the validation statistics) and ``empty()``; summaries
pickle and do not grow with n (except `ExactQuantiles`). `merge_all` folds a sequence left to right;
`summarize(r, x)` is ``r.empty().update(x)``.

Exact merges: `Moments`, `Covariance` (pairwise formulas, equal to two-pass up to rounding), `Histogram`,
`AdaptiveHistogram`, `Exceedance`, `HistogramChi2Test`, `GridKSTest`, `GridCvMTest` (integer counts),
`MomentChi2Test`, `MomentTest`, `SteinTest` (sums and pairwise means). Within a stated bound: `QuantileSketch`
(rank error <= t with probability >= 1 - delta, t reported by the result). The grid KS / CvM differ from the
exact statistics by at most 1/K and a reported bound B.
"""

from sdekit.reductions.base import Reduction, merge_all, summarize
from sdekit.reductions.exceedance import Exceedance, ExceedanceResult, clopper_pearson
from sdekit.reductions.gof_counts import GridCvMTest, GridKSTest, HistogramChi2Test
from sdekit.reductions.gof_moments import MomentChi2Test, MomentTest, SteinTest
from sdekit.reductions.histogram import AdaptiveHistogram, AdaptiveHistogramResult, Histogram, HistogramResult
from sdekit.reductions.moments import Covariance, CovarianceResult, Moments, MomentsResult
from sdekit.reductions.quantiles import ExactQuantiles, QuantileResult, QuantileSketch

__all__ = [
    "AdaptiveHistogram", "AdaptiveHistogramResult", "Covariance", "CovarianceResult", "ExactQuantiles", "Exceedance",
    "ExceedanceResult", "GridCvMTest", "GridKSTest", "Histogram", "HistogramChi2Test", "HistogramResult",
    "MomentChi2Test", "MomentTest", "Moments", "MomentsResult", "QuantileResult", "QuantileSketch", "Reduction",
    "SteinTest", "clopper_pearson", "merge_all", "summarize",
]
