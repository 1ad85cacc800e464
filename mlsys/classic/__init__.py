"""Classic distributed machine learning: one algorithm, three ways to run it.

K-means, logistic regression by minibatch SGD and histogram-based gradient-boosted trees are each
written once, against the small superstep interface of :mod:`mlsys.classic.algorithm` (partitions
compute statistics, the statistics are summed, a coordinator decides). Executors run them:

* :func:`run_local`: in this process (one partition: the single-process build);
* :func:`run_allreduce`: on real processes that all-reduce the statistics over ``mlsys.comm``;
* :func:`run_parameter_server`: workers push statistics to a server process and pull decisions;
* :func:`run_dask`: as tasks on Dask's distributed scheduler, the driver aggregating.

Every executor sums in partition order, so a fit gives bitwise the same model whichever way it
runs; each returns a :class:`Run` with the time, the bytes moved and a timeline of every process.
"""

from .algorithm import Algorithm, Coordinator, Partition, split
from .allreduce import run_allreduce
from .dataflow import run_dask
from .gbdt import HistogramGBDT, TreeEnsemble, bin_features, quantile_edges
from .kmeans import KMeans, KMeansModel, assign
from .logistic import LogisticModel, LogisticRegressionSGD
from .paramserver import run_parameter_server
from .run import Run, Span, run_local

__all__ = [
    "Algorithm", "Partition", "Coordinator", "split",
    "KMeans", "KMeansModel", "assign",
    "LogisticRegressionSGD", "LogisticModel",
    "HistogramGBDT", "TreeEnsemble", "quantile_edges", "bin_features",
    "Run", "Span", "run_local", "run_allreduce", "run_parameter_server", "run_dask",
]
