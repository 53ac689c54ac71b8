"""What makes one dataset's pipeline different from another's; everything else lives in the factory."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from components.drift import DRIFT_ACTIONS

PROBLEMS = ("binary", "regression")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset's pipeline, declared: the factory (pipelines/factory.py) builds every component from it.
    A fifth dataset is a package `pipelines/<name>/` with spec.py (SPEC), features.py (preprocessing_fn),
    model.py (build_model), optionally report.py and schema.pbtxt, plus its name in registry.PIPELINES."""

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
    # dotted path of the dataset's own report module (pipelines/metadata/report.py says what it may define)
    report_module: Optional[str] = None
    # {raw feature: threshold} compared span to span (components/drift.py: L-infinity distance for categorical
    # features, Jensen-Shannon divergence for numeric ones); empty: no drift check
    drift_thresholds: Mapping[str, float] = dataclasses.field(default_factory=dict)
    drift_split: str = "train"  # the split whose statistics are compared
    drift_action: str = "warn"  # warn, block (stop before Transform, nothing pushed) or off; DRIFT= overrides
    # {raw feature: threshold} for `make skew` (serving traffic against the training data); None: the drift
    # thresholds. A sample of requests is noisier than a span, so a dataset may allow more here.
    skew_thresholds: Optional[Mapping[str, float]] = None

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
