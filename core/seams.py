"""Every place the project leans on a library's internals, each with the upstream file it depends on and a check
that fails loudly when the internal is gone or no longer used: an upgrade of TFX or TensorFlow is one audit of this
module (and `tests/test_seams.py`, which runs each check in seconds).

Each seam's upstream file, what it is for and its check: docs/design-notes.md, core/seams.py.

The Pusher's output properties (`pushed`, `pushed_destination`, `pushed_version`) are set with the artifact's public
setters under the names TFX's Pusher writes (tfx/components/pusher/executor.py, `_MarkPushed`): a contract with
ML Metadata's readers, not a private call (components/atomic_pusher.py).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator, List, Optional, Sequence


class SeamBroken(RuntimeError):
    """A library no longer has, or no longer uses, an internal the project relies on: audit core/seams.py."""


def _broken(seam: str, what: str) -> SeamBroken:
    return SeamBroken(
        f"seam {seam!r} (core/seams.py): {what}. The installed library changed; re-audit the "
        f"seam before trusting results"
    )


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
        raise _broken(
            "transform_processor",
            "TFX's Transform executor ran without building "
            "transform_executor.TransformProcessor, so the fixed analyzer batch size was not applied",
        )


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
        raise _broken(
            "autograph_rule_for_tf_keras",
            "tensorflow.python.autograph.core.config has no CONVERSION_RULES / DoNotConvert",
        )
    prefixes = [getattr(rule, "_prefix", None) for rule in rules]
    if "keras" not in prefixes:
        raise _broken(
            "autograph_rule_for_tf_keras",
            "AutoGraph's rules no longer hold DoNotConvert('keras'), the rule this one copies for tf_keras",
        )
    if "tf_keras" not in prefixes:
        config.CONVERSION_RULES = (config.DoNotConvert("tf_keras"),) + tuple(rules)


# ------------------------------------------------------------------------------------ no tfx_ephemeral package
def no_tfx_ephemeral_package(beam_pipeline_args: Sequence[str]) -> bool:
    """TFX's Beam executors add `--extra_package=<a tfx_ephemeral sdist>` to every Beam stage's arguments unless
    one of extra_packages, setup_file, requirements_file or sdk_container_image is set: a copy of the installed
    TFX, rebuilt each time (1.6 s per stage here) and, on a portable runner, uploaded to the job server. It is for
    workers that lack TFX. Where the workers run the project's own environment (the DirectRunner; SDK workers
    started EXTERNAL, LOOPBACK or PROCESS from this venv or the image) the arguments are kept as they are, for the
    life of the process; for any other runner (Dataflow with its default image) TFX's behaviour stays. Returns
    whether the seam is on."""
    if not workers_run_this_environment(beam_pipeline_args):
        return False
    from tfx.dsl.components.base import base_beam_executor
    from tfx.utils import dependency_utils

    if (
        not callable(getattr(dependency_utils, "make_beam_dependency_flags", None))
        or getattr(base_beam_executor, "dependency_utils", None) is not dependency_utils
    ):
        raise _broken(
            "no_tfx_ephemeral_package", "base_beam_executor no longer calls dependency_utils.make_beam_dependency_flags"
        )
    dependency_utils.make_beam_dependency_flags = _beam_args_as_given
    return True


def workers_run_this_environment(beam_pipeline_args: Sequence[str]) -> bool:
    """Whether Beam's workers for these arguments run the driver's environment: no --runner or the DirectRunner,
    or SDK workers of --environment_type EXTERNAL / LOOPBACK / PROCESS (a pool or process the project starts from
    its own environment). DOCKER (the portable default) and Dataflow run an image that may lack the project."""
    runner = (_last_arg(beam_pipeline_args, "runner") or "direct").lower()
    if runner.removesuffix("runner") in ("direct", "switchingdirect", "bundlebaseddirect"):
        return True
    environment = (_last_arg(beam_pipeline_args, "environment_type") or "").upper()
    return environment in ("EXTERNAL", "LOOPBACK", "PROCESS")


def _last_arg(args: Sequence[str], name: str) -> Optional[str]:
    value, args = None, list(args or ())
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
    return value


def _beam_args_as_given(beam_pipeline_args):
    return list(beam_pipeline_args)


# ------------------------------------------------------------------------------------ DirectRunner without Prism
DIRECT_RUNNER_WITHOUT_PRISM = "--allow_unsafe_triggers"


def direct_runner_without_prism() -> str:
    """The Beam argument that keeps Beam 2.74's DirectRunner from trying Prism: it first runs each pipeline it
    judges Prism can run on Prism, whose binary it downloads from GitHub for that pipeline (urlopen, no timeout),
    and falls back to the FnApiRunner when that fails, so 4 of Titanic's 6 Beam pipelines each tried a download.
    The visitor deciding it skips Prism for a pipeline that allows unsafe triggers; the flag does nothing else
    in a batch pipeline with default triggers (it only lifts GroupByKey's refusal of data-dropping triggers,
    transforms/core.py). A Prism built from the Go module proxy was measured instead (--prism_location): Titanic
    84 s against 77 s on the FnApiRunner, so the FnApiRunner stays (docs/beam.md)."""
    import inspect

    from apache_beam.runners.direct import direct_runner

    source = inspect.getsource(direct_runner.SwitchingDirectRunner.run_pipeline)
    if "PrismRunner" in source and "allow_unsafe_triggers" not in source:
        raise _broken(
            "direct_runner_without_prism", "the DirectRunner tries Prism without reading allow_unsafe_triggers"
        )
    return DIRECT_RUNNER_WITHOUT_PRISM


# ------------------------------------------------------------------------------------ v2 entrypoint flags
def v2_entrypoint_flags() -> Callable:
    """TFX's KFP v2 container entrypoint's flag parser (its __main__ runs app.run(main, flags_parser=it))."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as entrypoint

    parser = getattr(entrypoint, "_parse_flags", None)
    if not callable(parser):
        raise _broken("v2_entrypoint_flags", "kubeflow_v2_run_executor has no _parse_flags")
    return parser


SEAMS = (
    "transform_processor",
    "call_flat",
    "autograph_rule_for_tf_keras",
    "no_tfx_ephemeral_package",
    "direct_runner_without_prism",
    "v2_entrypoint_flags",
)
