"""TF Serving's configuration files, in TF Serving's own text-proto formats, read as TF Serving reads them.

    --model_config_file         ModelServerConfig (tensorflow_serving/config/model_server_config.proto):
                                model_config_list { config { name base_path model_platform
                                  model_version_policy { latest { num_versions } | all {} | specific { versions } }
                                  version_labels { key value } } }
    --monitoring_config_file    MonitoringConfig (config/monitoring_config.proto):
                                prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }
    --batching_parameters_file  BatchingParameters (servables/tensorflow/session_bundle_config.proto:149-203):
                                max_batch_size { value: 128 } batch_timeout_micros { value: 0 }
                                max_enqueued_batches { value: 100 } num_batch_threads { value: 8 } ...

The model server config comes with tensorflow-serving-api; the other two are not in that package, so their
messages are declared here field for field (same names, numbers and wrapper types), and text_format parses them
as TF Serving's ParseProtoTextFile does: an unknown field is an error naming it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import List, Optional, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, text_format, wrappers_pb2

try:  # protobuf 3.20 (TFX's pin) and newer
    from google.protobuf.message_factory import GetMessageClass as _message_class
except ImportError:  # pragma: no cover - older protobuf
    from google.protobuf import message_factory as _factory

    def _message_class(descriptor):
        return _factory.MessageFactory().GetPrototype(descriptor)


# TF Serving's defaults where a file leaves a field out
DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # util/prometheus_exporter.cc:156 (kPrometheusPath)
# tensorflow/core/kernels/batching_util/shared_batch_scheduler.h QueueOptions: input_batch_size_limit 1000,
# batch_timeout_micros 0, max_enqueued_batches 10; BatchingParameters' num_batch_threads: the machine's cores
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_TIMEOUT_MICROS = 0
DEFAULT_MAX_ENQUEUED_BATCHES = 10


class ConfigError(ValueError):
    """A configuration file TF Serving would refuse; the message names the file and the problem."""


def _declare():
    """MonitoringConfig and BatchingParameters as TF Serving's .proto files declare them."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="tfx_book/tf_serving_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    f = descriptor_pb2.FieldDescriptorProto

    def message(name, fields):
        m = proto.message_type.add(name=name)
        for field_name, number, kind, type_name, label in fields:
            m.field.add(name=field_name, number=number, type=kind, type_name=type_name or None, label=label)

    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    message("PrometheusConfig", [("enable", 1, f.TYPE_BOOL, "", opt), ("path", 2, f.TYPE_STRING, "", opt)])
    message("MonitoringConfig", [("prometheus_config", 1, f.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig", opt)])
    int64 = ".google.protobuf.Int64Value"
    message(
        "BatchingParameters",
        [
            ("max_batch_size", 1, f.TYPE_MESSAGE, int64, opt),
            ("batch_timeout_micros", 2, f.TYPE_MESSAGE, int64, opt),
            ("max_enqueued_batches", 3, f.TYPE_MESSAGE, int64, opt),
            ("num_batch_threads", 4, f.TYPE_MESSAGE, int64, opt),
            ("thread_pool_name", 5, f.TYPE_MESSAGE, ".google.protobuf.StringValue", opt),
            ("allowed_batch_sizes", 6, f.TYPE_INT64, "", rep),
            ("pad_variable_length_inputs", 7, f.TYPE_BOOL, "", opt),
            ("enable_large_batch_splitting", 8, f.TYPE_MESSAGE, ".google.protobuf.BoolValue", opt),
            ("max_execution_batch_size", 9, f.TYPE_MESSAGE, int64, opt),
        ],
    )
    pool.Add(proto)
    return (
        _message_class(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")),
        _message_class(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")),
    )


MonitoringConfigProto, BatchingParametersProto = _declare()


def _parse(path: Path, message, what: str):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path}: cannot read it ({exc})") from None
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ConfigError(f"{what} {path}: {exc}") from None


# ------------------------------------------------------------------------------------------------ models
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    policy: Tuple  # ("latest", n) | ("all",) | ("specific", (v, ...))
    labels: Tuple[Tuple[str, int], ...] = ()
    written_path: str = dataclasses.field(default="", compare=False)  # base_path as the file has it (relative?)

    def aspired(self, versions: List[int]) -> List[int]:
        """The versions on disk (oldest first) this policy serves (file_system_storage_path_source.cc:
        AspireLatestVersions, AspireAllVersions, AspireSpecificVersions)."""
        if self.policy[0] == "all":
            return list(versions)
        if self.policy[0] == "specific":
            return [v for v in versions if v in self.policy[1]]
        return list(versions[-self.policy[1] :]) if self.policy[1] > 0 else []


def default_model(name: str, base_path: str) -> ModelConfig:
    """A model found under the serving root with no config file: TF Serving's default policy, the newest version
    (model_server_config.proto: FileSystemStoragePathSourceConfig's default is `latest { num_versions: 1 }`)."""
    return ModelConfig(name, base_path, ("latest", 1))


def read_model_config(path: Path) -> List[ModelConfig]:
    from tensorflow_serving.config import model_server_config_pb2

    config = _parse(path, model_server_config_pb2.ModelServerConfig(), "model config file")
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"model config file {path}: expected a model_config_list (custom_model_config is not served)")
    models, seen = [], set()
    for entry in config.model_config_list.config:
        if not entry.name:
            raise ConfigError(f"model config file {path}: a config without a name")
        if entry.name in seen:
            raise ConfigError(f"model config file {path}: model {entry.name!r} is configured twice")
        seen.add(entry.name)
        if not entry.base_path:
            raise ConfigError(f"model config file {path}: model {entry.name!r} has no base_path")
        if entry.model_platform not in ("", "tensorflow"):
            raise ConfigError(
                f"model config file {path}: model {entry.name!r}: model_platform "
                f"{entry.model_platform!r} is not served (tensorflow is)"
            )
        policy = entry.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        if kind == "all":
            chosen: Tuple = ("all",)
        elif kind == "specific":
            if not policy.specific.versions:
                raise ConfigError(
                    f"model config file {path}: model {entry.name!r}: a specific policy lists no versions"
                )
            chosen = ("specific", tuple(sorted(set(policy.specific.versions))))
        else:
            n = policy.latest.num_versions if kind == "latest" else 1
            chosen = ("latest", n if n > 0 else 1)  # TF Serving: num_versions 0 means the default, 1
        # A relative base_path is resolved against the config file's folder. TF Serving resolves it against its
        # working directory; serving/deploy's manifests run it with the config's folder as working directory
        # (workingDir / docker -w), so one file means the same models to both.
        base = (
            entry.base_path
            if os.path.isabs(entry.base_path)
            else os.path.join(os.path.dirname(os.path.abspath(path)), entry.base_path)
        )
        models.append(
            ModelConfig(entry.name, base, chosen, tuple(sorted(entry.version_labels.items())), entry.base_path)
        )
    return models


def write_model_config(path: Path, models: List[ModelConfig]) -> None:
    """Writes `models` as a ModelServerConfig, atomically (a sibling file renamed into place): a server polling
    the file reads the old or the new one, never half of one."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for model in models:
        entry = config.model_config_list.config.add(
            name=model.name, base_path=model.written_path or model.base_path, model_platform="tensorflow"
        )
        if model.policy[0] == "all":
            entry.model_version_policy.all.SetInParent()
        elif model.policy[0] == "specific":
            entry.model_version_policy.specific.versions.extend(model.policy[1])
        else:
            entry.model_version_policy.latest.num_versions = model.policy[1]
        for label, version in model.labels:
            entry.version_labels[label] = version
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text_format.MessageToString(config), encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------ monitoring
def read_monitoring_config(path: Path) -> Optional[str]:
    """The path Prometheus metrics are served at, or None when not enabled."""
    config = _parse(path, MonitoringConfigProto(), "monitoring config file")
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    where = prometheus.path or DEFAULT_PROMETHEUS_PATH
    if not where.startswith("/"):
        raise ConfigError(f"monitoring config file {path}: path {where!r} must start with '/'")
    return where


# ------------------------------------------------------------------------------------------------ batching
@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_timeout_micros: int = DEFAULT_BATCH_TIMEOUT_MICROS
    max_enqueued_batches: int = DEFAULT_MAX_ENQUEUED_BATCHES
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: Tuple[int, ...] = ()
    enable_large_batch_splitting: bool = False


def read_batching_parameters(path: Optional[Path]) -> BatchingParameters:
    if path is None:
        return BatchingParameters()
    config = _parse(path, BatchingParametersProto(), "batching parameters file")
    values = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        if config.HasField(name):
            values[name] = getattr(config, name).value
            if values[name] < (0 if name == "batch_timeout_micros" else 1):
                raise ConfigError(f"batching parameters file {path}: {name} {values[name]} is out of range")
    if config.HasField("enable_large_batch_splitting"):
        values["enable_large_batch_splitting"] = config.enable_large_batch_splitting.value
    params = BatchingParameters(**values, allowed_batch_sizes=tuple(config.allowed_batch_sizes))
    if params.allowed_batch_sizes and params.allowed_batch_sizes[-1] != params.max_batch_size:
        # bundle_factory_util.cc WrapSessionForBatching, the same check and words
        raise ConfigError(
            f"batching parameters file {path}: Last entry in allowed_batch_sizes must match "
            f"max_batch_size; last entry was {params.allowed_batch_sizes[-1]}; expected "
            f"{params.max_batch_size}"
        )
    return params
