"""What makes one dataset's pipeline different from another's; everything else lives in the factory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from modeling.drift import DRIFT_ACTIONS

PROBLEMS = ("binary", "multiclass", "regression")
# Evaluator bounds a spec may set for itself (orchestration/config.py has the defaults; a variable set in the
# environment still wins): what `make new-pipeline` drafts from a baseline on the user's table
BOUNDS = (
    "min_auc",
    "min_ks",
    "max_auc_drop",
    "min_accuracy",
    "min_macro_auc",
    "max_mse",
    "max_mse_rise",
    "min_r2",
    "max_mspe",
    "max_mspe_rise",
)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset's pipeline, declared: the factory (orchestration/factory.py) builds every component from it.
    A fifth dataset is a package `pipelines/<name>/` with spec.py (SPEC), features.py (preprocessing_fn),
    model.py (build_model), optionally report.py and schema.pbtxt; the registry finds it (`make new-pipeline`
    drafts one from a table)."""

    name: str  # pipeline name; also the model name under the serving directory
    dataset: str  # data/datasets.py entry fetched into DATA_DIR/<dataset>
    # (input folder, file pattern prefix) -> an ExampleGen component; the prefix is "span-{SPAN}/" when the
    # folder holds spans, so that TFX picks the newest span
    make_example_gen: Callable[[str, str], object]
    preprocessing_fn: str  # dotted path, importable by Beam workers and in the container image
    model_builder: str  # dotted path: build(tft_output) -> compiled Keras model
    label_key: str
    raw_feature_keys: Sequence[str]  # the raw features the served model takes
    problem: str = "binary"
    schema_file: Optional[Path] = None  # curated schema; None: infer one with SchemaGen
    slice_features: Sequence[str] = ()
    epochs: int = 10
    batch_size: int = 32
    seed: int = 42
    trainer_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # more TrainerSettings fields
    # dotted path of the dataset's own report module (metadata/report.py says what it may define)
    report_module: Optional[str] = None
    # {raw feature: threshold} compared span to span (modeling/drift.py: L-infinity distance for categorical
    # features, Jensen-Shannon divergence for numeric ones); empty: no drift check
    drift_thresholds: Mapping[str, float] = dataclasses.field(default_factory=dict)
    drift_split: str = "train"  # the split whose statistics are compared
    drift_action: str = "warn"  # warn, block (stop before Transform, nothing pushed) or off; DRIFT= overrides
    # {raw feature: threshold} for `make skew` (serving traffic against the training data); None: the drift
    # thresholds. A sample of requests is noisier than a span, so a dataset may allow more here.
    skew_thresholds: Optional[Mapping[str, float]] = None
    # The user's own folder, read as is (never fetched, no manifest); None: the fetched dataset `dataset`
    data_root: Optional[str] = None
    # classification: the class names in class-index order (the served `classes`); binary: [negative, positive]
    label_classes: Sequence[str] = ()
    # {bound: value} for this pipeline's Evaluator (see BOUNDS); the environment's MIN_AUC etc. win
    bounds: Mapping[str, float] = dataclasses.field(default_factory=dict)
    # regression: the metric the bounds judge: "mse" (MSE, MAE, R²) or "mspe" (covid's percentage error)
    regression_metric: str = "mse"

    def __post_init__(self):
        if self.problem not in PROBLEMS:
            raise ValueError(f"{self.name}: problem {self.problem!r} is not one of {PROBLEMS}")
        if self.drift_action not in DRIFT_ACTIONS:
            raise ValueError(f"{self.name}: drift_action {self.drift_action!r} is not one of {DRIFT_ACTIONS}")
        for what, limits in (("drift", self.drift_thresholds), ("skew", self.skew_thresholds or {})):
            bad = {k: v for k, v in limits.items() if not isinstance(v, (int, float)) or not 0 < v <= 1}
            if bad:
                raise ValueError(f"{self.name}: {what} thresholds must be numbers in (0, 1], got {bad}")
        if self.schema_file is not None and not Path(self.schema_file).is_file():
            raise FileNotFoundError(f"{self.name}: schema file {self.schema_file} does not exist")
        unknown = set(self.bounds) - set(BOUNDS)
        if unknown:
            raise ValueError(f"{self.name}: unknown bounds {sorted(unknown)} (known: {', '.join(BOUNDS)})")
        if self.problem == "multiclass" and len(self.label_classes) < 3:
            raise ValueError(
                f"{self.name}: a multiclass problem needs label_classes (3 or more), got {list(self.label_classes)}"
            )
        if self.regression_metric not in ("mse", "mspe"):
            raise ValueError(f"{self.name}: regression_metric {self.regression_metric!r} is not mse or mspe")
