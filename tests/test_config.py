import pytest

from orchestration import config


def test_defaults_live_inside_the_checkout():
    cfg = config.from_env({})
    assert cfg.output_dir == config.PROJECT_ROOT / "outputs"
    assert cfg.metadata_path("titanic") == config.PROJECT_ROOT / "outputs" / "titanic" / "metadata.sqlite"
    assert cfg.serving_root("titanic") == config.PROJECT_ROOT / "outputs" / "serving" / "titanic"
    assert (cfg.strategy, cfg.seed, cfg.min_auc, cfg.min_ks, cfg.enable_cache) == ("default", None, 0.80, 0.40, True)


def test_environment_overrides(tmp_path):
    cfg = config.from_env(
        {
            "OUTPUT_DIR": str(tmp_path / "out"),
            "SERVING_DIR": str(tmp_path / "srv"),
            "STRATEGY": "mirrored",
            "SEED": "7",
            "EPOCHS": "3",
            "MIN_AUC": "0.9",
            "MAX_AUC_DROP": "0",
            "ENABLE_CACHE": "false",
            "BEAM_ARGS": "--direct_num_workers=2 --direct_running_mode=multi_processing",
        }
    )
    assert cfg.pipeline_root("titanic") == tmp_path / "out" / "titanic"
    assert cfg.serving_root("titanic") == tmp_path / "srv" / "titanic"
    assert (cfg.strategy, cfg.seed, cfg.epochs, cfg.min_auc, cfg.max_auc_drop) == ("mirrored", 7, 3, 0.9, 0.0)
    assert cfg.enable_cache is False
    assert cfg.beam_args == ("--direct_num_workers=2", "--direct_running_mode=multi_processing")


def test_keyword_overrides_win_over_environment():
    assert config.from_env({"SEED": "7"}, seed=9).seed == 9


@pytest.mark.parametrize(
    "env, message",
    [
        ({"STRATEGY": "gpu"}, "STRATEGY='gpu' is not one of default, mirrored, multi_worker_mirrored, tpu"),
        ({"SEED": "abc"}, "SEED='abc' is not an integer"),
        ({"MIN_AUC": "high"}, "MIN_AUC='high' is not a number"),
        ({"MIN_AUC": "1.5"}, "MIN_AUC=1.5 must be within [0, 1]"),
        ({"EPOCHS": "0"}, "EPOCHS=0 must be a positive integer"),
        ({"ENABLE_CACHE": "maybe"}, "ENABLE_CACHE='maybe' is not 1/0, true/false"),
        ({"BEAM": "spark"}, "BEAM='spark' is not one of in_memory, multiprocess, portable, flink"),
        ({"BEAM_WORKERS": "0"}, "BEAM_WORKERS=0 must be a positive integer"),
        ({"BEAM": "flink", "FLINK_TASKMANAGERS": "0"}, "FLINK_TASKMANAGERS=0 must be a positive integer"),
        ({"BEAM": "flink", "FLINK_MASTER": "jobmanager"}, "FLINK_MASTER='jobmanager' must be host:port"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(config.ConfigError) as err:
        config.from_env(env)
    assert message in str(err.value)


def test_seed_defaults_per_dataset_and_env_wins():
    from orchestration.factory import trainer_settings
    from pipelines.covid.spec import SPEC as COVID
    from pipelines.titanic.spec import SPEC as TITANIC

    assert trainer_settings(TITANIC, config.from_env({}))["seed"] == 42
    assert trainer_settings(COVID, config.from_env({}))["seed"] == 1
    assert trainer_settings(COVID, config.from_env({"SEED": "7"}))["seed"] == 7


def test_beam_modes_give_the_runner_arguments():
    # the DirectRunner's modes keep it from trying Prism, which downloads a binary (core/seams.py)
    assert config.from_env({}).beam_pipeline_args() == [
        "--direct_running_mode=in_memory",
        "--direct_num_workers=1",
        "--allow_unsafe_triggers",
    ]
    assert config.from_env({"BEAM": "multiprocess", "BEAM_WORKERS": "3"}).beam_pipeline_args() == [
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=3",
        "--allow_unsafe_triggers",
    ]
    flink = config.from_env({"BEAM": "flink", "BEAM_JOB_PORT": "9001", "FLINK_TASKMANAGERS": "3"})
    assert flink.beam_pipeline_args() == [
        "--runner=PortableRunner",
        "--job_endpoint=localhost:9001",
        "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000",
        "--parallelism=3",
        "--environment_cache_millis=60000",
    ]
    portable = config.from_env({"BEAM": "portable", "BEAM_JOB_PORT": "9001", "BEAM_ARGS": "--max_num_records=5"})
    assert portable.beam_pipeline_args() == [
        "--runner=PortableRunner",
        "--job_endpoint=localhost:9001",
        "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000",
        "--direct_num_workers=2",
        "--max_num_records=5",
    ]
    # a runner of the user's own (Dataflow, Flink, Spark) replaces the mode's arguments
    dataflow = "--runner=DataflowRunner --project=p --region=r --temp_location=gs://b/tmp"
    assert config.from_env({"BEAM": "portable", "BEAM_ARGS": dataflow}).beam_pipeline_args() == dataflow.split()
