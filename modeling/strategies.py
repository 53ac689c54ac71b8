"""tf.distribute strategy by name, with a clear error where the hardware for it is absent.

The names are owned here and imported by the run settings (orchestration/config.py), which must stay light enough for
a CLI to parse settings without TensorFlow; so TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")


class StrategyUnavailable(RuntimeError):
    """The named strategy cannot run on this machine; the message says what is missing."""


def get_strategy(name: str, tpu: Optional[str] = None) -> tf.distribute.Strategy:
    """`default`: one device. `mirrored`: every GPU, or every (logical) CPU where there is no GPU.
    `multi_worker_mirrored`: the workers in TF_CONFIG (one local worker without it). `tpu`: the TPU at
    `tpu` / $TPU_NAME / the local one."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker_mirrored":
        tf_config = os.environ.get("TF_CONFIG")
        if tf_config:
            try:
                json.loads(tf_config)
            except ValueError as exc:
                raise StrategyUnavailable(f"TF_CONFIG is not valid JSON: {exc}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        address = tpu if tpu is not None else os.environ.get("TPU_NAME", "")
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            raise StrategyUnavailable(
                f"STRATEGY=tpu needs a TPU, and none was found at {address or 'the local host'!r} ({exc}); "
                f"use one of: {', '.join(s for s in STRATEGIES if s != 'tpu')}"
            ) from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def describe(strategy: tf.distribute.Strategy) -> dict:
    import tensorflow as tf

    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: whatever device TF places ops on
        gpus = tf.config.list_logical_devices("GPU")
        devices = [(gpus or tf.config.list_logical_devices("CPU"))[0].name]
    return {"class": type(strategy).__name__, "num_replicas": int(strategy.num_replicas_in_sync), "devices": devices}


def task_info(strategy: tf.distribute.Strategy) -> dict:
    """This process's place in a multi-worker cluster: only the chief writes the real outputs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None) if resolver is not None else None
    if not task_type:
        return {"type": None, "index": 0, "chief": True}
    index = int(resolver.task_id or 0)
    cluster = resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
    return {"type": task_type, "index": index, "chief": chief}
