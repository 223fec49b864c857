"""The export's fidelity report gives each AUROC and the drop with a bootstrap interval."""

from __future__ import annotations

import numpy as np

from ddad_edge.deploy.fidelity import compare_scores


def test_compare_scores_gives_intervals_that_contain_their_numbers():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(40, int), np.ones(40, int)]
    ref = rng.normal(0, 1, 80) + 1.5 * labels
    out = compare_scores(ref + rng.normal(0, 0.3, 80), ref, labels)
    lo, hi = out["auroc_interval"]
    assert lo < out["auroc"] < hi and hi - lo > 0.02
    dlo, dhi = out["auroc_drop_interval"]
    assert dlo <= out["auroc_drop"] <= dhi
    # The same scores as the reference: nothing lost, with certainty.
    same = compare_scores(ref, ref, labels)
    assert same["auroc_drop"] == 0.0 and same["auroc_drop_interval"] == [0.0, 0.0]
    # Without labels there is nothing to bound.
    assert compare_scores(ref, ref, None)["auroc_interval"] is None
