import json
import shutil

import pytest
import tensorflow_model_analysis as tfma

from orchestration import config as config_lib
from orchestration import evaluation, factory
from pipelines.titanic.spec import SPEC


def test_code_edits_change_the_fingerprint_that_invalidates_the_cache(tmp_path, monkeypatch):
    before = factory.code_fingerprint(SPEC)
    assert factory.code_fingerprint(SPEC) == before  # stable
    copies = []
    for room in factory._CODE_DIRS:  # the kernel, the model library, the components: what the steps run
        shutil.copytree(room, tmp_path / room.name)
        copies.append(tmp_path / room.name)
    monkeypatch.setattr(factory, "_CODE_DIRS", tuple(copies))
    assert factory.code_fingerprint(SPEC) == before  # same bytes, same hash wherever they live
    for room, module in (
        ("modeling", "feature_columns.py"),
        ("core", "layout.py"),
        ("components", "anomalies_gate.py"),
    ):
        edited = tmp_path / room / module
        original = edited.read_text()
        edited.write_text(original + "\n# edit\n")
        assert factory.code_fingerprint(SPEC) != before, f"an edit of {room}/{module} must change the fingerprint"
        edited.write_text(original)
    assert factory.code_fingerprint(SPEC) == before
    config = config_lib.PipelineConfig()
    components = {c.id: c for c in factory.create_components(SPEC, config)}
    assert components["Transform"].exec_properties["custom_config"]  # carried into the cache key
    assert factory.code_fingerprint(SPEC) in components["Trainer"].exec_properties["custom_config"]


def test_thresholds_gate_the_overall_slice_only():
    cfg = config_lib.PipelineConfig(min_auc=0.85, min_ks=0.5, max_auc_drop=0.02)
    eval_config = evaluation.eval_config(SPEC, cfg)
    assert [list(s.feature_keys) for s in eval_config.slicing_specs] == [[], ["Sex"], ["Pclass"]]
    metrics = {m.class_name: m for m in eval_config.metrics_specs[0].metrics}
    assert set(metrics) == {"ExampleCount", "BinaryAccuracy", "AUC", "KolmogorovSmirnov", "ConfusionMatrixPlot"}
    assert metrics["KolmogorovSmirnov"].module == "modeling.ks_metric"
    (auc,) = metrics["AUC"].per_slice_thresholds
    assert [list(s.feature_keys) for s in auc.slicing_specs] == [[]]
    assert auc.threshold.value_threshold.lower_bound.value == 0.85
    assert auc.threshold.change_threshold.absolute.value == -0.02
    assert auc.threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    (ks,) = metrics["KolmogorovSmirnov"].per_slice_thresholds
    assert ks.threshold.value_threshold.lower_bound.value == 0.5


def test_no_drop_allowed_still_lets_an_identical_model_through():
    eval_config = evaluation.eval_config(SPEC, config_lib.PipelineConfig(max_auc_drop=0.0))
    auc = next(m for m in eval_config.metrics_specs[0].metrics if m.class_name == "AUC")
    assert -1e-9 < auc.per_slice_thresholds[0].threshold.change_threshold.absolute.value < 0


def test_one_factory_builds_the_whole_chain_for_any_runner(tmp_path):
    cfg = config_lib.PipelineConfig(output_dir=tmp_path)
    pipeline = factory.create_pipeline(SPEC, cfg)
    assert {c.id for c in pipeline.components} == {
        "CsvExampleGen",
        "StatisticsGen",
        "ImportSchemaGen",
        "ExampleValidator",
        "AnomaliesGate",
        "Transform",
        "Trainer",
        "ServedBaseline",
        "Evaluator",
        "Pusher",
    }
    assert pipeline.metadata_connection_config.sqlite.filename_uri == str(tmp_path / "titanic" / "metadata.sqlite")
    transform = next(c for c in pipeline.components if c.id == "Transform")
    assert "AnomaliesGate" in {n.id for n in transform.upstream_nodes}
    kubeflow_style = factory.create_pipeline(SPEC, cfg, with_local_metadata=False)
    assert kubeflow_style.metadata_connection_config is None


def test_beam_stages_on_a_job_server_are_named_after_their_component(tmp_path):
    """Flink's REST API lists jobs by name: on BEAM=flink and on a PortableRunner of the user's each Beam stage is
    `<pipeline>-<component>`; the DirectRunner's and Dataflow's arguments stay as they are."""

    def job_names(**settings):
        pipeline = factory.create_pipeline(SPEC, config_lib.PipelineConfig(output_dir=tmp_path, **settings))
        return {
            c.id: [a for a in c.executor_spec.beam_pipeline_args if a.startswith("--job_name")]
            for c in pipeline.components
            if hasattr(c.executor_spec, "beam_pipeline_args")
        }

    on_flink = job_names(beam="flink")
    assert on_flink["Transform"] == ["--job_name=titanic-transform"]
    assert on_flink["CsvExampleGen"] == ["--job_name=titanic-csvexamplegen"]
    assert job_names(beam_args=("--runner=PortableRunner", "--job_endpoint=h:8099"))["Evaluator"] == [
        "--job_name=titanic-evaluator"
    ]
    assert not any(job_names().values())
    assert not any(job_names(beam_args=("--runner=DataflowRunner", "--project=p")).values())
    assert set(map(tuple, job_names(beam="flink", beam_args=("--job_name=mine",)).values())) == {("--job_name=mine",)}


def test_spans_add_the_drift_check_before_the_gate(tmp_path):
    (tmp_path / "titanic" / "span-1").mkdir(parents=True)
    cfg = config_lib.PipelineConfig(output_dir=tmp_path / "out", data_dir=tmp_path)
    nodes = {c.id: c for c in factory.create_pipeline(SPEC, cfg).components}
    assert {"PreviousSpanStatistics", "DriftCheck"} <= set(nodes)
    assert "DriftCheck" in {n.id for n in nodes["AnomaliesGate"].upstream_nodes}
    assert nodes["AnomaliesGate"].exec_properties["drift_action"] == "warn"  # the spec's default
    assert json.loads(nodes["DriftCheck"].exec_properties["thresholds"]) == dict(SPEC.drift_thresholds)
    blocking = {c.id: c for c in factory.create_components(SPEC, cfg.replace(drift="block"))}
    assert blocking["AnomaliesGate"].exec_properties["drift_action"] == "block"
    assert not {"PreviousSpanStatistics", "DriftCheck"} & {
        c.id for c in factory.create_components(SPEC, cfg.replace(drift="off"))
    }


def test_a_misspelt_trainer_option_is_refused_when_the_pipeline_is_built(tmp_path):
    import dataclasses

    from modeling.training import TrainerSettings

    typo = dataclasses.replace(SPEC, trainer_options={"early_stoping_patience": 2})
    with pytest.raises(
        ValueError,
        match=r"titanic spec's trainer_options: unknown trainer setting\(s\) "
        r"\['early_stoping_patience'\]",
    ):
        factory.create_pipeline(typo, config_lib.PipelineConfig(output_dir=tmp_path))
    with pytest.raises(ValueError, match="unknown trainer setting"):
        TrainerSettings.from_custom_config(
            {"model_builder": "m.f", "label_key": "y", "raw_feature_keys": [], "epochz": 3}
        )
