"""Runners: what turns the one pipeline definition into runs.

    run.py              `make run`: fetch data, `tfx pipeline create|update` + `tfx run create` (local engine)
    local.py            LocalDagRunner (Beam in-process) + SQLite ML Metadata; the per-dataset local_runner.py files
    beam.py             where the Beam stages run (BEAM=in_memory|multiprocess|portable)
    kubeflow.py         compile a Kubeflow Pipelines v2 package (`make kubeflow`), post-processed and checked
    kfp_package_check   what open-source KFP would refuse in a package
    kfp_entrypoint      the command every KFP task container runs: takes what the backend really sends
    kfp_twin            open-source KFP's v2 backend (driver, launcher, cache, ML Metadata) played locally
    object_store        gs:// and s3:// at the level of objects: markers, the launcher's downloads, credentials
    data_fingerprint    what keys ExampleGen in KFP's cache
"""
