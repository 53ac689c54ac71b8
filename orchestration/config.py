"""Run settings: plain defaults, overridden by environment variables (which `make VAR=value` sets).

Design notes: docs/design-notes.md, orchestration/config.py."""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path
from typing import Mapping, Optional, Tuple

from core.layout import PROJECT_ROOT, default_serving_dir
from core.seams import DIRECT_RUNNER_WITHOUT_PRISM
from modeling.drift import DRIFT_ACTIONS
from modeling.strategies import STRATEGIES

BEAM_MODES = ("in_memory", "multiprocess", "portable", "flink")
PUSH_LABELS = ("stable", "canary")


class ConfigError(ValueError):
    """A setting has a value the pipeline cannot use; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    output_dir: Path = PROJECT_ROOT / "outputs"
    data_dir: Path = PROJECT_ROOT / "data" / "raw"
    data_root: Optional[Path] = None  # DATA_ROOT: the folder the run reads, the user's own, never fetched into
    serving_dir: Optional[Path] = None
    strategy: str = "default"
    seed: Optional[int] = None  # None: the dataset spec's own default
    epochs: Optional[int] = None  # None: the dataset spec's own default
    batch_size: Optional[int] = None
    min_auc: float = 0.80
    min_ks: float = 0.40
    max_auc_drop: float = 0.01
    max_mspe: float = 0.5
    max_mspe_rise: float = 0.05
    min_accuracy: float = 0.0
    min_macro_auc: float = 0.5
    max_mse: Optional[float] = None  # None: no absolute bound
    max_mse_rise: float = 0.1  # relative: the candidate's MSE may be at most 10% above the baseline's
    min_r2: Optional[float] = None
    enable_cache: bool = True
    warm_start: bool = False
    beam: str = "in_memory"
    beam_workers: int = 2
    beam_job_port: int = 8099  # Beam's default job port
    beam_worker_pool_port: int = 50000  # the port Beam's SDK containers serve a worker pool on
    beam_args: Tuple[str, ...] = ()  # BEAM_ARGS
    flink_taskmanagers: int = 2
    flink_slots: int = 2  # per TaskManager: a lost TaskManager's tasks can restart on the others' spare slots
    flink_parallelism: Optional[int] = None  # None: one task per TaskManager
    flink_master: str = ""  # FLINK_MASTER: a running cluster's REST endpoint; none is started then
    drift: Optional[str] = None  # DRIFT; None: the dataset spec's own drift_action
    # PUSH_LABEL: the serving label a pushed model takes (core/promotion.py). "stable": it takes the traffic,
    # as without labels; "canary": it serves beside the stable version, which keeps its label
    push_label: str = "stable"
    explicit: Tuple[str, ...] = ()  # the fields set from the environment or by `replace`: they win over a spec's

    def __post_init__(self):
        if self.beam not in BEAM_MODES:
            raise ConfigError(f"BEAM={self.beam!r} is not one of {', '.join(BEAM_MODES)}")
        if self.beam_workers < 1:
            raise ConfigError(f"BEAM_WORKERS={self.beam_workers} must be a positive integer")
        for field in ("flink_taskmanagers", "flink_slots", "flink_parallelism"):
            if getattr(self, field) is not None and getattr(self, field) < 1:
                raise ConfigError(f"{field.upper()}={getattr(self, field)} must be a positive integer")
        if self.flink_master and not self.flink_master.split("://")[-1].rsplit(":", 1)[-1].rstrip("/").isdigit():
            raise ConfigError(f"FLINK_MASTER={self.flink_master!r} must be host:port (the JobManager's REST API)")
        for field in ("beam_job_port", "beam_worker_pool_port"):
            if not 0 <= getattr(self, field) <= 65535:
                raise ConfigError(f"{field.upper()}={getattr(self, field)} must be a port number (0: a free one)")
        if self.push_label not in PUSH_LABELS:
            raise ConfigError(f"PUSH_LABEL={self.push_label!r} is not one of {', '.join(PUSH_LABELS)}")
        if self.drift is not None and self.drift not in DRIFT_ACTIONS:
            raise ConfigError(f"DRIFT={self.drift!r} is not one of {', '.join(DRIFT_ACTIONS)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"STRATEGY={self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        for field in ("epochs", "batch_size"):
            value = getattr(self, field)
            if value is not None and value < 1:
                raise ConfigError(f"{field.upper()}={value} must be a positive integer")
        for field in ("min_auc", "min_ks", "min_accuracy", "min_macro_auc"):
            if not 0.0 <= getattr(self, field) <= 1.0:
                raise ConfigError(f"{field.upper()}={getattr(self, field)} must be within [0, 1]")
        for field in ("max_auc_drop", "max_mspe", "max_mspe_rise", "max_mse", "max_mse_rise"):
            if getattr(self, field) is not None and getattr(self, field) < 0:
                raise ConfigError(f"{field.upper()}={getattr(self, field)} must be >= 0")

    def pipeline_root(self, name: str) -> Path:
        return Path(self.output_dir) / name

    def metadata_path(self, name: str) -> Path:
        return self.pipeline_root(name) / "metadata.sqlite"

    def serving_root(self, name: str) -> Path:
        return Path(self.serving_dir or default_serving_dir({"OUTPUT_DIR": str(self.output_dir)})) / name

    def dataset_dir(self, dataset: str) -> Path:
        """The folder a run reads: DATA_ROOT when set, else the fetched dataset under DATA_DIR."""
        return Path(self.data_root) if self.data_root else Path(self.data_dir) / dataset

    @property
    def user_runner(self) -> bool:
        """BEAM_ARGS name a runner of their own (Dataflow, Flink, Spark): BEAM's mode starts nothing."""
        return any(a.startswith("--runner") for a in self.beam_args)

    def beam_pipeline_args(self) -> list:
        """What every Beam stage runs with: BEAM's arguments, then BEAM_ARGS (alone when they name a runner)."""
        extra = list(self.beam_args)
        if self.user_runner:
            return extra  # the user's own runner: Dataflow, Flink, Spark
        # the DirectRunner's modes never try Prism, which downloads its binary (core/seams.py)
        if self.beam == "in_memory":
            mode = ["--direct_running_mode=in_memory", "--direct_num_workers=1", DIRECT_RUNNER_WITHOUT_PRISM]
        elif self.beam == "multiprocess":
            mode = [
                "--direct_running_mode=multi_processing",
                f"--direct_num_workers={self.beam_workers}",
                DIRECT_RUNNER_WITHOUT_PRISM,
            ]
        elif self.beam == "portable":  # services that runners/beam.py starts for the run
            mode = [
                "--runner=PortableRunner",
                f"--job_endpoint=localhost:{self.beam_job_port}",
                "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{self.beam_worker_pool_port}",
                f"--direct_num_workers={self.beam_workers}",
            ]
        else:  # flink: a session cluster, Beam's job server and the worker pool (runners/flink.py)
            mode = [
                "--runner=PortableRunner",
                f"--job_endpoint=localhost:{self.beam_job_port}",
                "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{self.beam_worker_pool_port}",
                f"--parallelism={self.flink_stage_parallelism}",
                # a job's SDK workers live on between its stages (runners/flink.py, write_conf).
                # 60 s, not 10: at 100x rows an environment idle for 10 s on one TaskManager was closed while
                # the Evaluator's job still needed it, and every restart got the closed one (docs/beam.md)
                "--environment_cache_millis=60000",
            ]
        return mode + extra

    @property
    def flink_stage_parallelism(self) -> int:
        return self.flink_parallelism or self.flink_taskmanagers

    def replace(self, **changes) -> "PipelineConfig":
        given = set(changes.pop("explicit", ()))
        changes["explicit"] = tuple(sorted(set(self.explicit) | given | set(changes)))
        return dataclasses.replace(self, **changes)

    def bound(self, name: str, spec_bounds: Mapping[str, float]):
        """An Evaluator bound: set in the environment (or by `replace`), else the spec's own, else the default."""
        if name in self.explicit or name not in spec_bounds:
            return getattr(self, name)
        return spec_bounds[name]


def _parse(env: Mapping[str, str], name: str, kind):
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(raw)
    except ValueError:
        expected = {int: "an integer", float: "a number", bool: "1/0, true/false"}[kind]
        raise ConfigError(f"{name}={raw!r} is not {expected}") from None


def from_env(env: Optional[Mapping[str, str]] = None, **overrides) -> PipelineConfig:
    """The defaults, then environment variables, then explicit keyword overrides."""
    env = os.environ if env is None else env
    values = {}
    for field, var in (
        ("output_dir", "OUTPUT_DIR"),
        ("data_dir", "DATA_DIR"),
        ("serving_dir", "SERVING_DIR"),
        ("data_root", "DATA_ROOT"),
    ):
        if env.get(var):
            values[field] = Path(env[var]).expanduser().resolve()
    if env.get("STRATEGY"):
        values["strategy"] = env["STRATEGY"].strip()
    if env.get("BEAM"):
        values["beam"] = env["BEAM"].strip()
    if env.get("FLINK_MASTER"):
        values["flink_master"] = env["FLINK_MASTER"].strip()
    if env.get("DRIFT"):
        values["drift"] = env["DRIFT"].strip().lower()
    if env.get("PUSH_LABEL"):
        values["push_label"] = env["PUSH_LABEL"].strip().lower()
    for field, var, kind in (
        ("seed", "SEED", int),
        ("epochs", "EPOCHS", int),
        ("batch_size", "BATCH_SIZE", int),
        ("beam_workers", "BEAM_WORKERS", int),
        ("beam_job_port", "BEAM_JOB_PORT", int),
        ("beam_worker_pool_port", "BEAM_WORKER_POOL_PORT", int),
        ("flink_taskmanagers", "FLINK_TASKMANAGERS", int),
        ("flink_slots", "FLINK_SLOTS", int),
        ("flink_parallelism", "FLINK_PARALLELISM", int),
        ("min_auc", "MIN_AUC", float),
        ("min_ks", "MIN_KS", float),
        ("max_auc_drop", "MAX_AUC_DROP", float),
        ("max_mspe", "MAX_MSPE", float),
        ("max_mspe_rise", "MAX_MSPE_RISE", float),
        ("min_accuracy", "MIN_ACCURACY", float),
        ("min_macro_auc", "MIN_MACRO_AUC", float),
        ("max_mse", "MAX_MSE", float),
        ("max_mse_rise", "MAX_MSE_RISE", float),
        ("min_r2", "MIN_R2", float),
        ("enable_cache", "ENABLE_CACHE", bool),
        ("warm_start", "WARM_START", bool),
    ):
        parsed = _parse(env, var, kind)
        if parsed is not None:
            values[field] = parsed
    if env.get("BEAM_ARGS"):
        values["beam_args"] = tuple(shlex.split(env["BEAM_ARGS"]))
    values.update(overrides)
    values["explicit"] = tuple(sorted(set(values) - {"explicit"}))
    return PipelineConfig(**values)
