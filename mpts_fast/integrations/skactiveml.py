"""scikit-activeml query strategies computed by our selection ops: CoreSet (greedy k-center, ops.kcenter_greedy) and
Badge (k-means++ over gradient embeddings, ops.badge_select), with scikit-activeml's query interface
(`query(X, y, ..., candidates=None, batch_size=1, return_utilities=False)`, missing labels marked by
`missing_label`, `random_state`).

CoreSet picks what skactiveml.pool.CoreSet picks (Euclidean metric) whenever at least one sample is labeled: each
pick is the candidate farthest from its nearest labeled or already picked sample. With no labeled sample the first
pick differs by definition: skactiveml draws it at random among equal zero distances, ours is the candidate farthest
from the candidates' mean (then both continue farthest-first). Ties go to the lowest index (skactiveml breaks them
at random).

Badge follows skactiveml.pool.Badge (the classifier's probabilities and, with `clf_embedding_flag_name`, its
embeddings; the first pick the largest gradient norm, the rest drawn by k-means++ D² sampling) but draws from our
generator, seeded from `random_state`, so picks after the first differ from skactiveml's own draws.

Needs scikit-activeml (pip install scikit-activeml); importing this module without it raises ImportError saying so.
"""
from __future__ import annotations

import numpy as np
import torch

try:
    from skactiveml.base import SingleAnnotatorPoolQueryStrategy, SkactivemlClassifier
    from skactiveml.utils import MISSING_LABEL, check_equal_missing_label, check_type, labeled_indices
except ImportError as e:  # pragma: no cover - exercised without scikit-activeml
    raise ImportError("mpts_fast.integrations.skactiveml needs scikit-activeml: pip install scikit-activeml (or pip "
                      "install 'mpts-fast[integrations]')") from e

from mpts_fast import ops

__all__ = ["CoreSet", "Badge"]


def _seed(random_state: np.random.RandomState) -> torch.Generator:
    return torch.Generator().manual_seed(int(random_state.randint(0, 2**31 - 1)))


def _tensor(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x))
    return t if t.dtype in (torch.float32, torch.float64) else t.double()


def _min_distances(x: torch.Tensor, centres: torch.Tensor, block: int = 8192) -> torch.Tensor:
    """(n,) Euclidean distance of each row of x to its nearest row of centres (inf without centres)."""
    if centres.shape[0] == 0:
        return torch.full((x.shape[0],), float("inf"), dtype=torch.float64)
    return torch.cat([torch.cdist(xb.double(), centres.double()).min(1).values for xb in x.split(block)])


class CoreSet(SingleAnnotatorPoolQueryStrategy):
    """Greedy k-center (Sener & Savarese 2018) by ops.kcenter_greedy, a drop-in for skactiveml.pool.CoreSet with the
    Euclidean metric. X: (n_samples, n_features) embeddings; y: labels with `missing_label` for unlabeled samples."""

    def __init__(self, metric: str = "euclidean", missing_label=MISSING_LABEL, random_state=None) -> None:
        super().__init__(missing_label=missing_label, random_state=random_state)
        self.metric = metric

    def query(self, X, y, candidates=None, batch_size=1, return_utilities=False):
        """Indices of the `batch_size` samples to label next, in pick order (into X, or into `candidates` when those
        are samples); with return_utilities also (batch_size, n) distances to the nearest centre before each pick
        (NaN for labeled and non-candidate samples), as skactiveml returns them."""
        if self.metric != "euclidean":
            raise ValueError(f"metric: ops.kcenter_greedy measures Euclidean distance, got {self.metric!r}; use "
                             f"skactiveml.pool.CoreSet for other metrics")
        X, y, candidates, batch_size, return_utilities = self._validate_data(
            X, y, candidates, batch_size, return_utilities, reset=True)
        X_cand, mapping = self._transform_candidates(candidates, X, y)
        labeled = labeled_indices(y, missing_label=self.missing_label_)
        if mapping is not None:  # candidates are rows of X: the op sees the candidates and the labeled rows only
            rows = np.union1d(np.asarray(mapping, dtype=np.int64), labeled)
            is_labeled = np.isin(rows, labeled)
            features, n_out, to_out = X[rows], X.shape[0], rows
        else:  # candidates are new samples: they come first, the labeled rows of X after them
            features = np.concatenate([X_cand, X[labeled]], axis=0)
            is_labeled = np.arange(len(features)) >= len(X_cand)
            n_out, to_out = len(X_cand), np.arange(len(features))
        free = int((~is_labeled).sum())
        if batch_size > free:
            raise ValueError(f"batch_size: {batch_size} asked for but only {free} unlabeled candidates")
        feats = _tensor(features)
        mask = torch.from_numpy(is_labeled)
        picks = ops.kcenter_greedy(feats, batch_size, labeled=mask if is_labeled.any() else None).numpy()
        query_indices = to_out[picks]
        if not return_utilities:
            return query_indices
        return query_indices, self._utilities(feats, mask, picks, to_out, n_out, batch_size)

    @staticmethod
    def _utilities(feats, mask, picks, to_out, n_out, batch_size) -> np.ndarray:
        dist = _min_distances(feats, feats[mask])
        if not bool(mask.any()):
            dist.zero_()  # skactiveml's convention: no centre yet, every distance 0
        out = np.full((batch_size, n_out), np.nan)
        cand = ~mask.numpy()
        for i, p in enumerate(picks):
            row = dist.numpy().copy()
            row[~cand] = np.nan
            row[picks[:i]] = np.nan
            inside = to_out < n_out  # new candidates: the labeled rows appended after them are not reported
            out[i, to_out[inside]] = row[inside]
            step = _min_distances(feats, feats[p:p + 1])
            dist = step if i == 0 and not bool(mask.any()) else torch.minimum(dist, step)
        return out


class Badge(SingleAnnotatorPoolQueryStrategy):
    """BADGE (Ash et al. 2020) by ops.badge_select, following skactiveml.pool.Badge: `clf` (a fitted or fittable
    SkactivemlClassifier) gives the probabilities of the unlabeled candidates, and with clf_embedding_flag_name its
    predict_proba(..., **{flag: True}) returns (probabilities, embeddings); otherwise the samples themselves are the
    embeddings. The gradient embeddings (p − e_ŷ) ⊗ h are never formed."""

    def __init__(self, clf_embedding_flag_name=None, missing_label=MISSING_LABEL, random_state=None) -> None:
        super().__init__(missing_label=missing_label, random_state=random_state)
        self.clf_embedding_flag_name = clf_embedding_flag_name

    def query(self, X, y, clf, fit_clf=True, sample_weight=None, candidates=None, batch_size=1,
              return_utilities=False):
        """Indices of the `batch_size` samples to label next, in pick order (into X, or into `candidates` when those
        are samples). return_utilities is not offered (the D² sampling probabilities are never materialised)."""
        from sklearn.base import clone

        if return_utilities:
            raise ValueError("return_utilities: this Badge does not form the sampling probabilities; use "
                             "skactiveml.pool.Badge when you need them")
        X, y, candidates, batch_size, return_utilities = self._validate_data(
            X, y, candidates, batch_size, return_utilities, reset=True)
        X_cand, mapping = self._transform_candidates(candidates, X, y)
        check_type(clf, "clf", SkactivemlClassifier)
        check_equal_missing_label(clf.missing_label, self.missing_label_)
        if fit_clf:
            clf = clone(clf).fit(X, y) if sample_weight is None else clone(clf).fit(X, y, sample_weight)
        if candidates is None:
            X_unl, unl_mapping = X_cand, mapping
        elif mapping is not None:
            keep = np.isin(mapping, labeled_indices(y, missing_label=self.missing_label_), invert=True)
            X_unl, unl_mapping = X_cand[keep], mapping[keep]
        else:
            X_unl, unl_mapping = X_cand, np.arange(len(X_cand))
        if batch_size > len(X_unl):
            raise ValueError(f"batch_size: {batch_size} asked for but only {len(X_unl)} unlabeled candidates")
        flag = self.clf_embedding_flag_name
        kwargs = {flag: True} if isinstance(flag, str) else (dict(flag) if flag else {})
        out = clf.predict_proba(X_unl, **kwargs)
        probas, emb = out if isinstance(out, tuple) else (out, X_unl)
        picks = ops.badge_select(_tensor(probas), _tensor(emb), batch_size, generator=_seed(self.random_state_))
        return np.asarray(unl_mapping)[picks.numpy()]
