"""Statistics across methods over paired trials: Friedman, pairwise Wilcoxon signed-rank with Bonferroni,
and Nemenyi (scikit-posthocs, imported lazily) for the critical-difference diagram."""
from __future__ import annotations

import itertools
import math

import numpy as np


def average_ranks(scores: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Mean rank per method (1 = best) over trials; ties share the mean rank. scores (trials, methods)."""
    from scipy.stats import rankdata

    return rankdata(-scores if higher_is_better else scores, axis=1).mean(0)


def friedman(scores: np.ndarray) -> tuple[float | None, float | None]:
    """(statistic, p) of scipy's Friedman test; (None, None) when it is undefined (fewer than 3 methods or
    2 trials) and p = 1 when every trial ties all methods."""
    from scipy.stats import friedmanchisquare

    n, k = scores.shape
    if k < 3 or n < 2:
        return None, None
    if np.all(scores == scores[:, :1]):
        return 0.0, 1.0
    stat, p = friedmanchisquare(*[scores[:, j] for j in range(k)])
    return float(stat), float(p) if math.isfinite(p) else 1.0


def wilcoxon_bonferroni(scores: np.ndarray, names: list[str]) -> dict[str, dict]:
    """Pairwise two-sided Wilcoxon signed-rank tests; p multiplied by the number of pairs (capped at 1).
    A pair whose differences are all zero gets p = 1 (no evidence of a difference)."""
    from scipy.stats import wilcoxon

    pairs = list(itertools.combinations(range(len(names)), 2))
    out = {}
    for a, b in pairs:
        d = scores[:, a] - scores[:, b]
        if np.all(d == 0) or len(d) < 2:
            stat, p = None, 1.0
        else:
            res = wilcoxon(scores[:, a], scores[:, b])
            stat, p = float(res.statistic), float(res.pvalue)
        out[f"{names[a]} vs {names[b]}"] = {
            "statistic": stat, "p": p, "p_bonferroni": min(1.0, p * len(pairs)),
            "median_difference": float(np.median(d)),
        }
    return out


def nemenyi(scores: np.ndarray, names: list[str]):
    """Nemenyi p-values after Friedman (scikit-posthocs), a DataFrame indexed by method; None if undefined."""
    if scores.shape[1] < 2 or scores.shape[0] < 2:
        return None
    try:
        import pandas as pd
        import scikit_posthocs as sp
    except ImportError:  # optional: the other statistics do not need it
        import warnings

        warnings.warn("scikit-posthocs is not installed: no Nemenyi test or CD diagram (pip install scikit-posthocs)")
        return None

    p = sp.posthoc_nemenyi_friedman(pd.DataFrame(scores, columns=names))
    # all-tied data yields NaN p-values: no evidence of a difference
    return p.fillna(1.0)


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float | None:
    """Nemenyi critical difference q_α √(k(k+1)/(6n)) with q_α from the studentised range (scipy)."""
    if k < 2 or n < 2:
        return None
    from scipy.stats import studentized_range

    q = studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def summarise(scores: np.ndarray, names: list[str], higher_is_better: bool, metric: str) -> dict:
    stat, p = friedman(scores)
    ranks = average_ranks(scores, higher_is_better)
    nem = nemenyi(scores, names)
    return {
        "metric": metric,
        "friedman_statistic": stat,
        "friedman_p": p,
        "wilcoxon": wilcoxon_bonferroni(scores, names),
        "average_ranks": {n: float(r) for n, r in zip(names, ranks)},
        "nemenyi_p": None if nem is None else {a: {b: float(nem.loc[a, b]) for b in names} for a in names},
        "critical_difference": critical_difference(len(names), scores.shape[0]),
    }
