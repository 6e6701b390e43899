"""The validation sample's own noise: how far a point's luck on its validation images moves its value.

Every seed of a point validates on the same images, so the point's luck on those images is shared
by all its seeds and the seed spread never shows it. A study already holds a second, independent
sample of images scored by the same networks: the test set. A seed's validation accuracy minus its
test accuracy is the point's luck on the two samples (its training noise cancels), plus the seed's
own luck on single images. So the points' mean gaps vary by twice one sample's point variance
beyond what their seeds' spread explains: a one-way random-effects ANOVA of the gaps by point
(method of moments, truncated at 0), with the points less one as its degrees of freedom.

It assumes the two samples are the same size (10,000 images each on MNIST) and drawn alike; a
systematic validation-test difference that varies between points only makes the estimate larger.
Points at chance are left out (a guessing network's luck is not a trained one's), and so are failed
seeds. Nothing beyond what the trial record stores (``seed_values``, ``seed_test_accuracies``)
is needed: a study without test accuracies gets no estimate, and the output says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from search.analysis.verdicts import CHANCE, failed_seeds


class ImageNoise(NamedTuple):
    """The variance of one point's validation offset (its luck on the validation images), with its df."""

    variance: float
    df: float
    points: int


def image_noise(val: Sequence[Sequence[float]], test: Sequence[Sequence[float] | None]) -> ImageNoise | None:
    """The point variance of the validation offset from each point's seeds' validation and test accuracies.

    ``val[i]`` and ``test[i]`` are point i's seeds' accuracies in seed order (``test[i]`` None when
    not stored). None with fewer than two points that have both.
    """
    gaps = []
    for v, t in zip(val, test, strict=True):
        if t is None or len(t) != len(v):
            continue
        v, t = np.asarray(v, dtype=float), np.asarray(t, dtype=float)
        keep = ~failed_seeds(v) & np.isfinite(t) & (v >= CHANCE)
        if keep.any():
            gaps.append(v[keep] - t[keep])
    if len(gaps) < 2:
        return None
    means = np.array([g.mean() for g in gaps])
    within = [g for g in gaps if len(g) >= 2]
    spread = float(np.var(means, ddof=1))
    if within:
        dof = sum(len(g) - 1 for g in within)
        pooled = sum(float(g.var(ddof=1)) * (len(g) - 1) for g in within) / dof
        spread -= pooled * float(np.mean([1 / len(g) for g in gaps]))
    return ImageNoise(max(0.0, spread) / 2, float(len(gaps) - 1), len(gaps))
