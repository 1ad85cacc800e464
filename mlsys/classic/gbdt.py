"""Histogram-based gradient-boosted trees (the LightGBM idea, Ke et al., NeurIPS 2017), level-wise.

Features are cut into at most ``bins`` quantile bins once, before training (LightGBM builds its
bin boundaries from a sample too), so a split is a (feature, bin) pair and finding the best split
of a node needs only, per feature and bin, the sums of the gradients ``g``, the hessians ``h`` and
the row count: a **histogram**. Histograms add up: the histogram of all rows is the sum of the
partitions' histograms. So one superstep grows one level of the current tree:

* each partition builds the histograms of the nodes of the level from its own rows;
* the histograms are summed (all-reduced, pushed to a server, aggregated by a driver);
* the coordinator scores every candidate split of every node with the second-order gain of
  XGBoost (Chen & Guestrin, KDD 2016), ``G_L^2/(H_L+l2) + G_R^2/(H_R+l2) - G^2/(H+l2)``, and
  decides each node's split (or makes it a leaf, with value ``-lr * G / (H + l2)``);
* every partition moves its rows to their children; after the last level it adds the leaf
  values to its scores and recomputes ``g`` and ``h`` for the next tree.

Because the summed histograms are the single-process histograms (up to the order of float
additions), the distributed build chooses the same splits as a single-process build.
The statistics grow with the level (``3 * 2^level * features * bins`` numbers), unlike k-means'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .algorithm import Algorithm, Coordinator, Partition, check_features
from .logistic import sigmoid

LOSSES = ("logistic", "squared")
INACTIVE, LEAF = -2, -1  # decision codes of a node with no rows, and of a node made a leaf
FIELDS = 5  # per node of a level: feature (or a code), bin, leaf value, left value, right value
TIE = 1e-9  # gains this close (relative) count as equal: see _first_best


def quantile_edges(x: np.ndarray, bins: int = 32) -> list[np.ndarray]:
    """Per feature, at most ``bins - 1`` increasing bin boundaries at the quantiles of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"quantile_edges: x must be a non-empty 2-D array, got shape {x.shape}")
    if not isinstance(bins, int) or isinstance(bins, bool) or not 2 <= bins <= 256:
        raise ValueError(f"quantile_edges: bins must be an integer in [2, 256], got {bins!r}")
    levels = np.linspace(0, 1, bins + 1)[1:-1]
    return [np.unique(np.quantile(col, levels)) for col in x.T]


def bin_features(x: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """The bin of every value, ``uint8``: bin ``b`` of feature ``f`` holds the values in
    ``[edges[f][b-1], edges[f][b])``, so "bin <= b" means "value < edges[f][b]"."""
    x = check_features(x, len(edges), "bin_features")
    return np.stack([np.searchsorted(e, col, side="right") for e, col in zip(edges, x.T)],
                    axis=1).astype(np.uint8)


@dataclass
class TreeEnsemble:
    """Boosted trees in heap layout (node ``i`` has children ``2i+1`` and ``2i+2``): per tree the
    split feature (``-1`` at a leaf), the split bin, and the value of each leaf."""

    edges: list[np.ndarray]
    loss: str
    features: list[np.ndarray] = field(default_factory=list)
    bins: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    def splits(self) -> list[tuple[int, int, int, int]]:
        """Every split as ``(tree, node, feature, bin)``, in order."""
        return [(t, int(i), int(f[i]), int(b[i])) for t, (f, b) in enumerate(zip(self.features, self.bins))
                for i in np.flatnonzero(f >= 0)]

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """The raw score (log-odds for the logistic loss) of every row."""
        xb = bin_features(x, self.edges)
        score = np.zeros(len(xb))
        rows = np.arange(len(xb))
        for feature, bin_, value in zip(self.features, self.bins, self.values):
            node = np.zeros(len(xb), dtype=np.int64)
            while True:
                f = feature[node]
                inner = f >= 0
                if not inner.any():
                    break
                left = xb[rows[inner], f[inner]] <= bin_[node[inner]]
                node[inner] = 2 * node[inner] + np.where(left, 1, 2)
            score += value[node]
        return score

    def predict(self, x: np.ndarray) -> np.ndarray:
        score = self.decision_function(x)
        return (score >= 0).astype(np.int64) if self.loss == "logistic" else score


def _first_best(gain: np.ndarray, scale: np.ndarray) -> int:
    """The first candidate (lowest feature, then bin) whose gain is within ``TIE`` of the best,
    relative to the size of the terms it is the difference of. Summing histograms in another
    order changes gains by rounding only (about 1e-16 of those terms), so a near-tie, common
    between correlated features, is broken the same way whatever the partitioning."""
    top = gain.max()
    if not np.isfinite(top):
        return 0
    tolerance = TIE * np.abs(scale[np.isfinite(gain)]).max()
    return int(np.flatnonzero(gain >= top - tolerance)[0])


class HistogramGBDT(Algorithm):
    """``trees`` trees of depth ``depth`` on features binned by ``edges`` (see
    :func:`quantile_edges`): ``trees * depth`` supersteps, one per tree level."""

    name = "histogram GBDT"

    def __init__(self, edges: list[np.ndarray], trees: int = 20, depth: int = 3,
                 learning_rate: float = 0.3, l2: float = 1.0, min_leaf: int = 5,
                 loss: str = "logistic") -> None:
        for what, value, low in (("trees", trees, 1), ("depth", depth, 1), ("min_leaf", min_leaf, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"HistogramGBDT: {what} must be an integer >= {low}, got {value!r}")
        if depth > 12:
            raise ValueError(f"HistogramGBDT: depth must be at most 12 (level histograms grow as "
                             f"2^depth), got {depth}")
        if loss not in LOSSES:
            raise ValueError(f"HistogramGBDT: loss must be one of {LOSSES}, got {loss!r}")
        for what, value in (("learning_rate", learning_rate), ("l2", l2)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"HistogramGBDT: {what} must be a finite number > 0, got {value!r}")
        if not edges or any(len(e) > 255 for e in edges):
            raise ValueError("HistogramGBDT: edges must list at most 255 boundaries for each of "
                             "at least one feature (see quantile_edges)")
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        self.trees, self.depth, self.min_leaf, self.loss = trees, depth, min_leaf, loss
        self.learning_rate, self.l2 = float(learning_rate), float(l2)
        self.bins = max(len(e) for e in self.edges) + 1
        if self.bins < 2:
            raise ValueError("HistogramGBDT: every feature is constant (no bin boundaries)")

    @property
    def steps(self) -> int:
        return self.trees * self.depth

    def statistics_size(self, level: int) -> int:
        """Numbers in one partition's statistics at tree level ``level``."""
        return 3 * 2 ** level * len(self.edges) * self.bins

    def partition(self, part: dict[str, np.ndarray]) -> GBDTPartition:
        xb = bin_features(part["x"], self.edges)
        y = np.asarray(part["y"], dtype=np.float64)
        if y.shape != (len(xb),):
            raise ValueError(f"HistogramGBDT partition: expected {len(xb)} labels, got shape {y.shape}")
        if self.loss == "logistic" and not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("HistogramGBDT partition: the logistic loss needs labels 0 or 1")
        cells = xb.astype(np.int64) + self.bins * np.arange(xb.shape[1])  # (feature, bin) cell
        return GBDTPartition(self, xb, y, cells, np.zeros(len(xb)), np.zeros(len(xb), np.int64))

    def coordinator(self) -> GBDTCoordinator:
        return GBDTCoordinator(self)

    def gradients(self, score: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.loss == "squared":
            return score - y, np.ones_like(score)
        p = sigmoid(score)
        return p - y, p * (1 - p)


class GBDTPartition(Partition):
    def __init__(self, spec: HistogramGBDT, xb: np.ndarray, y: np.ndarray, cells: np.ndarray,
                 score: np.ndarray, node: np.ndarray,
                 gh: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.spec, self.xb, self.y, self.cells, self.score, self.node = spec, xb, y, cells, score, node
        self.g, self.h = spec.gradients(score, y) if gh is None else gh  # fixed within a tree

    def statistics(self, step: int) -> np.ndarray:
        spec, level = self.spec, step % self.spec.depth
        nodes, width = 2 ** level, self.cells.shape[1] * spec.bins
        active = np.flatnonzero(self.node >= 0)
        local = self.node[active] - (nodes - 1)
        if len(local) and not 0 <= local.min() <= local.max() < nodes:
            raise ValueError(f"GBDT partition: step {step} is tree level {level}, but the rows "
                             "are at another level (apply each step's decision in order)")
        index = (local[:, None] * width + self.cells[active]).ravel()
        size = nodes * width
        g = np.bincount(index, weights=np.repeat(self.g[active], self.cells.shape[1]), minlength=size)
        h = np.bincount(index, weights=np.repeat(self.h[active], self.cells.shape[1]), minlength=size)
        n = np.bincount(index, minlength=size).astype(np.float64)
        return np.concatenate([g, h, n])

    def apply(self, decision: np.ndarray, step: int) -> GBDTPartition:
        spec, level = self.spec, step % self.spec.depth
        plan = decision.reshape(-1, FIELDS)
        score, node = self.score.copy(), self.node.copy()
        active = np.flatnonzero(node >= 0)
        local = node[active] - (len(plan) - 1)
        feature = plan[local, 0].astype(np.int64)
        leaf = feature == LEAF
        score[active[leaf]] += plan[local[leaf], 2]
        node[active[leaf]] = -1
        split = np.flatnonzero(feature >= 0)
        rows = active[split]
        left = self.xb[rows, feature[split]] <= plan[local[split], 1]
        if level == spec.depth - 1:  # the children are leaves: the tree is complete
            score[rows] += np.where(left, plan[local[split], 3], plan[local[split], 4])
            return GBDTPartition(spec, self.xb, self.y, self.cells, score, np.zeros_like(node))
        node[rows] = 2 * node[rows] + np.where(left, 1, 2)
        return GBDTPartition(spec, self.xb, self.y, self.cells, score, node, (self.g, self.h))


class GBDTCoordinator(Coordinator):
    def __init__(self, spec: HistogramGBDT) -> None:
        self.spec = spec
        self.model = TreeEnsemble(spec.edges, spec.loss)
        self._new_tree()

    def _new_tree(self) -> None:
        size = 2 ** (self.spec.depth + 1) - 1
        self.feature = np.full(size, LEAF, np.int64)
        self.bin = np.zeros(size, np.int64)
        self.value = np.zeros(size)

    def decide(self, total: np.ndarray, step: int) -> np.ndarray:
        spec, level = self.spec, step % self.spec.depth
        nodes, features = 2 ** level, len(spec.edges)
        g, h, n = (part.reshape(nodes, features, spec.bins) for part in np.split(total, 3))
        lam, lr, last = spec.l2, spec.learning_rate, level == spec.depth - 1
        gl, hl, nl = (np.cumsum(a, axis=2)[:, :, :-1] for a in (g, h, n))  # left: bins <= b
        gt, ht, nt = g[:, 0].sum(axis=1), h[:, 0].sum(axis=1), n[:, 0].sum(axis=1)
        gr, hr, nr = gt[:, None, None] - gl, ht[:, None, None] - hl, nt[:, None, None] - nl
        children = gl ** 2 / (hl + lam) + gr ** 2 / (hr + lam)
        gain = children - (gt ** 2 / (ht + lam))[:, None, None]
        gain[(nl < spec.min_leaf) | (nr < spec.min_leaf)] = -np.inf
        gain, children = gain.reshape(nodes, -1), children.reshape(nodes, -1)
        plan = np.zeros((nodes, FIELDS))
        for j in range(nodes):
            heap = nodes - 1 + j
            if nt[j] == 0:
                plan[j, 0] = INACTIVE
                continue
            best = _first_best(gain[j], children[j])
            if not gain[j, best] > 0:  # no split helps, or none leaves min_leaf rows each side
                plan[j] = (LEAF, 0, -lr * gt[j] / (ht[j] + lam), 0, 0)
                self.value[heap] = plan[j, 2]
                continue
            f, b = divmod(best, spec.bins - 1)
            plan[j, :2] = f, b
            self.feature[heap], self.bin[heap] = f, b
            if last:
                plan[j, 3] = -lr * gl[j, f, b] / (hl[j, f, b] + lam)
                plan[j, 4] = -lr * gr[j, f, b] / (hr[j, f, b] + lam)
                self.value[2 * heap + 1], self.value[2 * heap + 2] = plan[j, 3], plan[j, 4]
        if last:
            self.model.features.append(self.feature)
            self.model.bins.append(self.bin)
            self.model.values.append(self.value)
            self._new_tree()
        return plan.ravel()

    def result(self) -> TreeEnsemble:
        return self.model
