"""Each seam on a library's internals (core/seams.py) checked in seconds, without a pipeline: what it relies
on is still there and still used, and the check itself fails when it is not."""

from pathlib import Path

import pytest

from core import seams

NOTES = Path(__file__).resolve().parent.parent / "docs" / "design-notes.md"


def test_the_seams_list_is_the_table_in_the_design_notes():
    table = NOTES.read_text().split("## core/seams.py", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| `")]
    assert rows == [f"`{name}`" for name in seams.SEAMS]  # each seam once, in the module's order
    assert all(callable(getattr(seams, name)) for name in seams.SEAMS)


def test_transform_processor_is_built_by_tfxs_executor_and_missing_use_is_loud():
    from tfx.components.transform import executor as transform_executor

    from components.fixed_batch_transform import BATCH_SIZE, FixedBatchProcessor

    original = transform_executor.TransformProcessor
    with seams.transform_processor(FixedBatchProcessor):
        processor = transform_executor.TransformProcessor()  # what TFX's Do does
        assert isinstance(processor, FixedBatchProcessor)
    assert transform_executor.TransformProcessor is original
    # the fixed size where TFX would leave it to Beam's tuner (tf.Examples: None upstream)
    from tfx.components.transform import executor_utils  # noqa: F401 - the executor's own helpers import cleanly

    assert original()._GetDesiredBatchSize(0, None) is None
    assert processor._GetDesiredBatchSize(0, None) == BATCH_SIZE
    with pytest.raises(seams.SeamBroken, match="ran without building"):
        with seams.transform_processor(FixedBatchProcessor):
            pass  # a TFX that stopped using the global
    assert transform_executor.TransformProcessor is original
    # and TFX's Do still builds it from the module global (the line the seam depends on)
    import inspect

    assert "TransformProcessor()" in inspect.getsource(transform_executor.Executor.Do)


def test_call_flat_matches_the_structured_call():
    import tensorflow as tf

    class M(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.float32, name="b"), tf.TensorSpec([None], tf.float32, name="a")]
        )
        def f(self, b, a):
            return {"y": 10 * a + b}

    fn = M().f.get_concrete_function()
    assert seams.flat_call_supported(fn)
    structured = fn(a=tf.constant([1.0]), b=tf.constant([2.0]))["y"].numpy().tolist()
    flat = seams.call_flat(fn, [tf.constant([2.0]), tf.constant([1.0])])  # declared order: b, a
    assert structured == flat["y"].numpy().tolist() == [12.0]


def test_autograph_rule_is_added_once_and_a_missing_keras_rule_is_loud(monkeypatch):
    from tensorflow.python.autograph.core import config

    seams.autograph_rule_for_tf_keras()
    seams.autograph_rule_for_tf_keras()
    prefixes = [getattr(r, "_prefix", None) for r in config.CONVERSION_RULES]
    assert prefixes.count("tf_keras") == 1 and "keras" in prefixes
    monkeypatch.setattr(
        config,
        "CONVERSION_RULES",
        tuple(r for r in config.CONVERSION_RULES if getattr(r, "_prefix", None) not in ("keras", "tf_keras")),
    )
    with pytest.raises(seams.SeamBroken, match="DoNotConvert\\('keras'\\)"):
        seams.autograph_rule_for_tf_keras()


def test_v2_entrypoint_flags_parse_what_kfp_sends(monkeypatch):
    parser = seams.v2_entrypoint_flags()
    known, rest = parser(
        ["prog", "--executor_class_path", "a.B", "--json_serialized_invocation_args", "{}", "--runner=DirectRunner"]
    )
    assert known.executor_class_path == "a.B" and rest[-1] == "--runner=DirectRunner"
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as entrypoint

    monkeypatch.delattr(entrypoint, "_parse_flags")
    with pytest.raises(seams.SeamBroken, match="_parse_flags"):
        seams.v2_entrypoint_flags()


def test_pushed_model_properties_are_the_names_tfxs_pusher_writes():
    import inspect

    from tfx.components.pusher import executor as pusher_executor
    from tfx.types import standard_artifacts

    from components import atomic_pusher

    source = inspect.getsource(pusher_executor)
    for key in ("'pushed'", "'pushed_destination'", "'pushed_version'"):
        assert key in source  # _PUSHED_KEY, ... as TFX names them
    artifact = standard_artifacts.PushedModel()
    atomic_pusher.mark_pushed(artifact, "/srv/m/7", "7")
    assert (artifact.get_int_custom_property("pushed"), artifact.get_string_custom_property("pushed_version")) == (
        1,
        "7",
    )
    atomic_pusher.mark_not_pushed(artifact)
    assert artifact.get_int_custom_property("pushed") == 0


def test_transform_keeps_its_temporary_files_local_only_where_every_beam_worker_runs_here():
    """tf.Transform's temporary SavedModels go to local disk on an object store only when Beam's workers share that
    disk: the DirectRunner (BEAM=in_memory, multiprocess), not the portable runner or a user's cluster runner."""
    from components.fixed_batch_transform import workers_on_this_machine
    from orchestration.config import PipelineConfig

    assert workers_on_this_machine(PipelineConfig(beam="in_memory").beam_pipeline_args())
    assert workers_on_this_machine(PipelineConfig(beam="multiprocess").beam_pipeline_args())
    assert not workers_on_this_machine(PipelineConfig(beam="portable").beam_pipeline_args())
    assert not workers_on_this_machine(PipelineConfig(beam_args=("--runner=DataflowRunner",)).beam_pipeline_args())
    assert not workers_on_this_machine(["--runner", "FlinkRunner"])
    assert workers_on_this_machine([])
    assert workers_on_this_machine(["--runner=direct"]) and workers_on_this_machine(["--runner", "directrunner"])
    # the label TFX's Do hands the processor its temporary folder under (what FixedBatchProcessor replaces)
    import inspect

    from tfx.components.transform import executor as transform_executor

    assert "labels.TEMP_OUTPUT_LABEL" in inspect.getsource(transform_executor.Executor.Do)
    assert "labels.TEMP_OUTPUT_LABEL" in inspect.getsource(transform_executor.TransformProcessor.Transform)


def test_no_tfx_ephemeral_package_keeps_the_beam_arguments_as_given(monkeypatch):
    """Without the seam TFX builds a tfx_ephemeral sdist for every Beam stage and adds it as --extra_package; with
    it the executor's arguments are the ones given."""
    from tfx.dsl.components.base import base_beam_executor
    from tfx.utils import dependency_utils

    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags", dependency_utils.make_beam_dependency_flags)
    # a runner whose workers may lack the project (Dataflow, Beam's Docker image) keeps TFX's sdist
    assert not seams.no_tfx_ephemeral_package(["--runner=DataflowRunner", "--project=p"])
    assert not seams.no_tfx_ephemeral_package(["--runner=PortableRunner", "--job_endpoint=localhost:1"])
    assert dependency_utils.make_beam_dependency_flags is not seams._beam_args_as_given
    args = ["--runner=PortableRunner", "--job_endpoint=localhost:1", "--environment_type=EXTERNAL"]
    assert seams.no_tfx_ephemeral_package(args)
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=args, tmp_dir="/nonexistent")
    from tfx.components.statistics_gen.executor import Executor

    executor = Executor(context)
    assert executor._beam_pipeline_args[:3] == args  # then TFX's telemetry --labels
    assert not any(arg.startswith("--extra_package") for arg in executor._beam_pipeline_args)
    monkeypatch.setattr(base_beam_executor, "dependency_utils", object())
    with pytest.raises(seams.SeamBroken, match="make_beam_dependency_flags"):
        seams.no_tfx_ephemeral_package([])


def test_direct_runner_without_prism_is_a_flag_the_direct_runner_reads():
    import inspect

    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.direct import direct_runner

    flag = seams.direct_runner_without_prism()
    source = inspect.getsource(direct_runner.SwitchingDirectRunner.run_pipeline)
    assert "PrismRunner" in source and "allow_unsafe_triggers" in source
    options = PipelineOptions([flag]).get_all_options()
    assert options["allow_unsafe_triggers"] is True
