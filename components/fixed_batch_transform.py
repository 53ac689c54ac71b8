"""TFX's Transform, with the batches tf.Transform analyzes fixed in size, so a rerun computes the same numbers.

TFX's Transform leaves the batch size to Beam (tfx/components/transform/executor.py,
`TransformProcessor._GetDesiredBatchSize` returns None for tf.Examples): tfx_bsl then asks `beam.BatchElements` to
tune it from measured wall-clock time (tfx_bsl/coders/batch_util.py, `GetBatchElementsKwargs`: 1 .. 1000, aiming
at 1 s a batch). The analyzers (`tft.mean`, `tft.var`) reduce each batch in float32 and then merge the batches, so
where the batch edges fall changes the last bits of their results: on Titanic's 712 training rows, `var(Fare)` is
2710.80859 with batches of 1, 7 or 100 and 2710.80835 with all 712 in one batch. On a busy machine the
timings, hence the batch edges, change from run to run; the scaled feature then differs in its last bit, and so do
the trained weights -- rarely, which is why two runs usually agreed bit for bit (a Kubeflow rerun in CI did not).
With min = max the estimator is not consulted (apache_beam/transforms/util.py,
`_BatchSizeEstimator._calculate_next_batch_size`): batches are cut by count alone, the same every run.

On an object store (a Kubeflow task's s3:// or gs:// root), tf.Transform's temporary files (each analysis phase's
SavedModel, written once and read back by every bundle) go to the task's local disk when every Beam worker runs on
this machine (the DirectRunner, in memory or multi-processing): TFX puts them under the output artifact
(`<transform_graph>/.temp_path`, executor.py `Do`) and deletes them at the end, so on a store each of those small
files is an upload and several downloads. With any other runner (Dataflow, Flink, Spark, portable) workers may be
elsewhere and TFX's shared path is kept.

Component
    inputs, outputs, parameters: as TFX's Transform.
"""

from __future__ import annotations

import tempfile
from typing import Optional, Sequence

from tfx.components import Transform as TfxTransform
from tfx.components.transform import executor as transform_executor
from tfx.components.transform import labels
from tfx.dsl.components.base import executor_spec

from core import seams

# tfx_bsl's own cap for the tuned size (batch_util._BATCH_SIZE_CAP), i.e. what a fast machine settles on anyway:
# the same throughput once warmed up, without the tuned run's first batches of 1, 2, 4, ...
BATCH_SIZE = 1000


# as Beam names them once it has read --runner (apache_beam/runners/runner.py, create_runner: lower case, and
# "runner" appended when missing, so "direct", "DirectRunner" and "directrunner" are one runner)
LOCAL_RUNNERS = ("directrunner", "switchingdirectrunner", "bundlebaseddirectrunner")


def workers_on_this_machine(beam_pipeline_args: Sequence[str]) -> bool:
    """Whether every Beam worker of a pipeline with these arguments runs on this machine: Beam's DirectRunner (no
    --runner is the DirectRunner), in memory or with its multi-processing workers, which share this disk."""
    runner = None
    args = list(beam_pipeline_args or ())
    for i, arg in enumerate(args):
        if arg.startswith("--runner="):
            runner = arg.split("=", 1)[1]
        elif arg == "--runner" and i + 1 < len(args):
            runner = args[i + 1]
    if runner is None:
        return True  # Beam's default, the DirectRunner
    name = runner.lower()
    return (name if name.endswith("runner") else name + "runner") in LOCAL_RUNNERS


def _on_object_store(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


class FixedBatchProcessor(transform_executor.TransformProcessor):
    local_temp = False  # set per run by Executor.Do: whether tf.Transform may keep its temporary files here

    def Transform(self, inputs, outputs, status_file=None) -> None:
        temp = outputs.get(labels.TEMP_OUTPUT_LABEL)
        if not (self.local_temp and temp and _on_object_store(str(temp))):
            return super().Transform(inputs, outputs, status_file)
        with tempfile.TemporaryDirectory(prefix="transform-temp-") as local:
            return super().Transform(inputs, {**outputs, labels.TEMP_OUTPUT_LABEL: local}, status_file)

    def _GetDesiredBatchSize(self, data_format: int, schema) -> Optional[int]:
        # TFX's answer where it has one (1 for sequence examples decoded as raw records), ours instead of "tune"
        desired = super()._GetDesiredBatchSize(data_format, schema)
        return BATCH_SIZE if desired is None else desired


class Executor(transform_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        # TFX's Do builds `TransformProcessor()` from its module's global and offers no other way in: the seam puts
        # ours there for this call, and fails loudly if TFX did not build it (core/seams.py)
        processor = type(
            FixedBatchProcessor.__name__,
            (FixedBatchProcessor,),
            {"local_temp": workers_on_this_machine(self._beam_pipeline_args)},
        )
        with seams.transform_processor(processor):
            super().Do(input_dict, output_dict, exec_properties)


class Transform(TfxTransform):
    """See the module docstring."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
