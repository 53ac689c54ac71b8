"""Runners: what turns the one pipeline definition into runs.

    run.py              `make run`: fetch data, `tfx pipeline create|update` + `tfx run create` (local engine)
    local.py            LocalDagRunner (Beam in-process) + SQLite ML Metadata; the per-dataset local_runner.py files
    kubeflow.py         compile a Kubeflow Pipelines v2 package (`make kubeflow`), post-processed and checked
    kfp_package_check   what open-source KFP would refuse in a package
    kfp_entrypoint      the command every KFP task container runs
    kfp_harness         KFP's driver + launcher played locally, to run a package here
"""
