"""Every place the project leans on a library's internals, each with the upstream file it depends on and a check
that fails loudly when the internal is gone or no longer used: an upgrade of TFX or TensorFlow is one audit of this
module (and `tests/test_seams.py`, which runs each check in seconds).

| seam | upstream (TFX 1.16 / TF 2.16) | what for | check |
|---|---|---|---|
| `transform_processor` | tfx/components/transform/executor.py: `Do` builds `TransformProcessor()` from the module's global and hands it the temporary folder under `labels.TEMP_OUTPUT_LABEL` | fixed analyzer batches; tf.Transform's temporary files on local disk on an object store (components/fixed_batch_transform.py) | the replacement must be constructed inside `Do`, else SeamBroken; tests/test_seams.py checks the label is still how `Do` passes the folder (without it the files stay where TFX puts them: slower, not wrong) |
| `call_flat` | tensorflow/python/eager/polymorphic_function/concrete_function.py `_call_flat`; saved_model/load.py | serving's signature call without re-binding (serving/inference.py) | present, and the first call of each loaded signature is compared with the structured call |
| `autograph_rule_for_tf_keras` | tensorflow/python/autograph/core/config.py `CONVERSION_RULES`, `DoNotConvert` | AutoGraph leaves tf_keras alone as it leaves keras (components/training.py) | the rules must still hold DoNotConvert('keras'), else SeamBroken |
| `v2_entrypoint_flags` | tfx/orchestration/kubeflow/v2/container/kubeflow_v2_run_executor.py `_parse_flags` | the KFP task entrypoint parses flags as TFX's own __main__ (pipelines/runners/kfp_entrypoint.py) | present and parses the two required flags |

The Pusher's output properties (`pushed`, `pushed_destination`, `pushed_version`) are set with the artifact's public
setters under the names TFX's Pusher writes (tfx/components/pusher/executor.py, `_MarkPushed`): a contract with
ML Metadata's readers, not a private call (components/atomic_pusher.py).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, List


class SeamBroken(RuntimeError):
    """A library no longer has, or no longer uses, an internal the project relies on: audit components/seams.py."""


def _broken(seam: str, what: str) -> SeamBroken:
    return SeamBroken(f"seam {seam!r} (components/seams.py): {what}. The installed library changed; re-audit the "
                      f"seam before trusting results")


# ------------------------------------------------------------------------------------ transform_processor
_SWAP = threading.Lock()


@contextlib.contextmanager
def transform_processor(replacement: type) -> Iterator[None]:
    """Within the block, TFX's Transform executor builds `replacement` instead of its TransformProcessor. Fails
    when the block ends without having built one: TFX stopped using the global, and the replacement (with it the
    fixed batch size) silently did nothing. Executors run one at a time in a process (TFX's launchers, KFP's
    one-task containers); the lock keeps it so."""
    from tfx.components.transform import executor as transform_executor

    original = getattr(transform_executor, "TransformProcessor", None)
    if original is None or not issubclass(replacement, original):
        raise _broken("transform_processor", "tfx.components.transform.executor has no TransformProcessor to replace")
    built: List[object] = []

    class Counted(replacement):
        def __init__(self, *args, **kwargs):
            built.append(self)
            super().__init__(*args, **kwargs)

    Counted.__name__ = Counted.__qualname__ = replacement.__name__
    with _SWAP:
        transform_executor.TransformProcessor = Counted
        try:
            yield
        finally:
            transform_executor.TransformProcessor = original
    if not built:
        raise _broken("transform_processor", "TFX's Transform executor ran without building "
                      "transform_executor.TransformProcessor, so the fixed analyzer batch size was not applied")


# ------------------------------------------------------------------------------------ call_flat
def flat_call_supported(fn) -> bool:
    return callable(getattr(fn, "_call_flat", None)) and hasattr(fn, "captured_inputs")


def call_flat(fn, flat_inputs: list):
    """`ConcreteFunction._call_flat(tensors, captured_inputs)`, how `__call__` itself ends."""
    return fn._call_flat(flat_inputs, fn.captured_inputs)  # noqa: SLF001


# ------------------------------------------------------------------------------------ autograph rule
def autograph_rule_for_tf_keras() -> None:
    """AutoGraph's rules say DoNotConvert('keras'), written when Keras 2 lived in the `keras` package; it lives in
    `tf_keras` now, which the rules do not name, so AutoGraph rewrote all of Keras' own code the first time a model
    was fitted (45 of the Titanic Trainer's 60 s). The same rule for the new name."""
    from tensorflow.python.autograph.core import config

    rules = getattr(config, "CONVERSION_RULES", None)
    if rules is None or not hasattr(config, "DoNotConvert"):
        raise _broken("autograph_rule_for_tf_keras", "tensorflow.python.autograph.core.config has no "
                      "CONVERSION_RULES / DoNotConvert")
    prefixes = [getattr(rule, "_prefix", None) for rule in rules]
    if "keras" not in prefixes:
        raise _broken("autograph_rule_for_tf_keras", "AutoGraph's rules no longer hold DoNotConvert('keras'), the "
                      "rule this one copies for tf_keras")
    if "tf_keras" not in prefixes:
        config.CONVERSION_RULES = (config.DoNotConvert("tf_keras"),) + tuple(rules)


# ------------------------------------------------------------------------------------ v2 entrypoint flags
def v2_entrypoint_flags() -> Callable:
    """TFX's KFP v2 container entrypoint's flag parser (its __main__ runs app.run(main, flags_parser=it))."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as entrypoint

    parser = getattr(entrypoint, "_parse_flags", None)
    if not callable(parser):
        raise _broken("v2_entrypoint_flags", "kubeflow_v2_run_executor has no _parse_flags")
    return parser


SEAMS = ("transform_processor", "call_flat", "autograph_rule_for_tf_keras", "v2_entrypoint_flags")
