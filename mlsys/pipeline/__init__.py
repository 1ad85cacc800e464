"""An ML pipeline around the engine: validate raw data, transform it with statistics fitted on the
training rows, train, register a versioned artefact, serve it with the same transformation, and
watch the incoming data for drift (``mlsys.pipeline``).

* :mod:`~mlsys.pipeline.schema` — a schema inferred from trusted data; the anomalies of a batch;
* :mod:`~mlsys.pipeline.features` — feature specs fitted on training rows, saved for serving;
* :mod:`~mlsys.pipeline.model` — a classifier trained with the engine, and its metrics;
* :mod:`~mlsys.pipeline.artifacts` — a model registry of versioned artefacts with provenance;
* :mod:`~mlsys.pipeline.serving` — a predictor that validates and transforms requests, and the
  training/serving skew test;
* :mod:`~mlsys.pipeline.drift` — population stability index and Kolmogorov-Smirnov drift checks.
"""

from .artifacts import ModelArtifact, ModelRegistry, compare, data_hash
from .drift import ColumnDrift, drift_report, psi
from .features import FeatureSpec, FittedFeatures
from .model import classification_metrics, predict_proba, train_classifier
from .schema import Anomaly, Feature, Schema, ValidationError
from .serving import Predictor, Skew, feature_skew, records_to_columns

__all__ = ["Schema", "Feature", "Anomaly", "ValidationError", "FeatureSpec", "FittedFeatures",
           "train_classifier", "predict_proba", "classification_metrics", "ModelRegistry",
           "ModelArtifact", "compare", "data_hash", "Predictor", "Skew", "feature_skew",
           "records_to_columns", "psi", "drift_report", "ColumnDrift"]
