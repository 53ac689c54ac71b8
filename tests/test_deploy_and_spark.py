"""Deployment manifests agree with the project; Spark bulk scoring equals in-process scoring."""

import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from metadata import results
from orchestration.config import PROJECT_ROOT
from pipelines.registry import PIPELINES
from serving.server import DEFAULT_GRPC_PORT, DEFAULT_REST_PORT

DEPLOY = PROJECT_ROOT / "serving" / "deploy"


def config_models(text: str):
    return re.findall(r'config \{ name: "([^"]+)" base_path: "([^"]+)" model_platform: "tensorflow" \}', text)


def test_deploy_files_are_the_rendering_of_the_registry():
    from ops import deploy as deploy_render
    from pipelines.registry import BOOK

    assert (DEPLOY / "kserve.yaml").read_text() == deploy_render.kserve_yaml(BOOK)
    assert (DEPLOY / "models.config").read_text() == deploy_render.model_config_text(BOOK)
    assert config_models((DEPLOY / "models.config").read_text()) == [(n, n) for n in BOOK]


def test_make_deploy_covers_a_pipeline_of_your_own(tmp_path):
    """A new pipeline (PIPELINES_PATH) gets an InferenceService and an entry in the serving root's model config;
    the entries already there keep their labels."""
    from core import tf_serving_config
    from ops import deploy as deploy_render

    serving_root = tmp_path / "serving"
    for name in ("titanic", "wine"):
        (serving_root / name / "1").mkdir(parents=True)
    assert deploy_render.ensure_model_config(serving_root, ["titanic"]) == ["titanic"]
    config = serving_root / "models.config"
    tf_serving_config.write_model_config(
        config,
        [
            m
            if m.name != "titanic"
            else m.__class__(m.name, m.base_path, ("specific", (1,)), (("stable", 1),), m.written_path)
            for m in tf_serving_config.read_model_config(config)
        ],
    )
    assert deploy_render.ensure_model_config(serving_root, ["titanic", "wine"]) == ["wine"]
    models = {m.name: m for m in tf_serving_config.read_model_config(config)}
    assert models["titanic"].labels == (("stable", 1),) and models["titanic"].written_path == "titanic"
    assert models["wine"].base_path == str((serving_root / "wine").resolve()) and models["wine"].policy == ("latest", 1)
    docs = list(yaml.safe_load_all(deploy_render.kserve_yaml(["titanic", "wine_quality"])))
    assert [d["metadata"]["name"] for d in docs] == ["tfx-book-titanic", "tfx-book-wine-quality"]
    assert docs[1]["spec"]["predictor"]["tensorflow"]["storageUri"] == "pvc://tfx-book-serving-models/wine_quality"
    written = deploy_render.render(tmp_path / "out", ["titanic", "wine"])
    assert {p.name for p in written} >= {"kserve.yaml", "kubernetes.yaml", "docker-run.sh", "models.config"}


def test_docker_command_mounts_the_serving_dir_and_uses_the_ports():
    script = (DEPLOY / "docker-run.sh").read_text()
    assert f"-p {DEFAULT_GRPC_PORT}:8500" in script and f"-p {DEFAULT_REST_PORT}:8501" in script
    assert '-v "$serving_dir:/models:ro"' in script and "outputs/serving" in script
    # the serving root's own config (the one `make promote` edits), its relative base paths resolved from /models
    assert "--model_config_file=/models/models.config" in script and "-w /models" in script
    assert "--monitoring_config_file=/config/monitoring.config" in script
    assert re.search(r"tensorflow/serving:2\.16\.\d", script)  # the TF the models were trained with


def test_kubernetes_manifests_are_consistent():
    from core import tf_serving_config

    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Deployment", "Service"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["workingDir"] == "/models"
    assert "--model_config_file=/models/models.config" in container["args"]
    # the ConfigMap's monitoring and batching configs are the ones `make serve` uses, and parse as TF Serving's
    data = kinds["ConfigMap"]["data"]
    for name in ("monitoring.config", "batching.config"):
        assert data[name].split() == [
            w for line in (DEPLOY / name).read_text().splitlines() if not line.startswith("#") for w in line.split()
        ]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": DEFAULT_GRPC_PORT,
        "http": DEFAULT_REST_PORT,
    }
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/models", "/config", "/tmp"}
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"] == kinds["Service"]["spec"]["selector"]
    assert {p["name"]: p["targetPort"] for p in kinds["Service"]["spec"]["ports"]} == {
        "grpc": DEFAULT_GRPC_PORT,
        "http": DEFAULT_REST_PORT,
    }
    assert container["readinessProbe"]["tcpSocket"]["port"] == DEFAULT_REST_PORT
    assert tf_serving_config.read_monitoring_config(DEPLOY / "monitoring.config") == "/monitoring/prometheus/metrics"
    assert tf_serving_config.read_batching_parameters(DEPLOY / "batching.config").max_batch_size == 64


def test_kserve_inference_services_cover_every_pipeline():
    docs = list(yaml.safe_load_all((DEPLOY / "kserve.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["InferenceService"] * len(PIPELINES)
    uris = {d["metadata"]["name"]: d["spec"]["predictor"]["tensorflow"]["storageUri"] for d in docs}
    assert uris == {f"tfx-book-{n}": f"pvc://tfx-book-serving-models/{n}" for n in PIPELINES}


def test_spark_scoring_equals_in_process_scoring(titanic_run, titanic_data, tmp_path):
    import pandas as pd
    import tensorflow as tf

    from serving import spark_batch

    model_dir = results.last_run("titanic", titanic_run).pushed_destination
    spark = spark_batch.spark_session("local[2]")
    try:
        rows = spark_batch.run(
            spark, model_dir, str(titanic_data / "test.csv"), str(tmp_path / "scored.parquet"), batch_size=50
        )
    finally:
        spark.stop()
    assert rows == 179
    scored = pd.read_parquet(tmp_path / "scored.parquet")  # CSV columns stay text: the model's dtypes decide
    scored = scored.assign(order=scored["PassengerId"].astype(int)).sort_values("order").drop(columns="order")
    source = pd.read_csv(titanic_data / "test.csv").sort_values("PassengerId")
    assert list(scored.columns) == list(source.columns) + ["probability"]
    fn = tf.saved_model.load(model_dir).signatures["serving_raw"]
    expected = (
        fn(
            Age=tf.constant(source["Age"].to_numpy(np.float32)),
            Fare=tf.constant(source["Fare"].to_numpy(np.float32)),
            Pclass=tf.constant(source["Pclass"].to_numpy(np.int64)),
            SibSp=tf.constant(source["SibSp"].to_numpy(np.int64)),
            Parch=tf.constant(source["Parch"].to_numpy(np.int64)),
            Sex=tf.constant(source["Sex"].tolist()),
            Embarked=tf.constant(source["Embarked"].fillna("").tolist()),
            Ticket=tf.constant(source["Ticket"].tolist()),
            Cabin=tf.constant(source["Cabin"].fillna("").tolist()),
        )["probability"]
        .numpy()
        .ravel()
    )
    np.testing.assert_allclose(scored["probability"].to_numpy(), expected, rtol=1e-5, atol=1e-6)


def test_spark_scoring_names_missing_columns(titanic_run, tmp_path):
    from serving import spark_batch

    model_dir = results.last_run("titanic", titanic_run).pushed_destination
    bad = tmp_path / "bad.csv"
    bad.write_text("Age,Fare\n1,2\n")
    spark = spark_batch.spark_session("local[1]")
    try:
        with pytest.raises(spark_batch.ScoringError, match=r"columns \['Cabin', 'Embarked'.* missing"):
            spark_batch.run(spark, model_dir, str(bad), str(tmp_path / "out.parquet"))
    finally:
        spark.stop()
    assert not (tmp_path / "out.parquet").exists()


# ---- the image and the pods run without privileges ("restricted" Pod Security Standard) ----
def test_the_image_runs_as_a_numeric_non_root_user_with_the_code_read_only():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users, "the image sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: runAsNonRoot can be checked without /etc/passwd
    last_user = dockerfile.rindex("USER ")
    assert "COPY" not in dockerfile[last_user:] and "RUN" not in dockerfile[last_user:]
    assert "chmod -R a-w,a+rX /app" in dockerfile  # the code: readable, not writable
    assert re.search(r"chown \d+:\d+ /gcs /minio /s3 /oci", dockerfile)  # where KFP's launcher downloads inputs
    assert "ENV HOME=/home/app" in dockerfile


def _restricted(pod_security, container_security):
    assert pod_security["runAsNonRoot"] is True and int(pod_security["runAsUser"]) != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container_security["allowPrivilegeEscalation"] is False
    assert container_security["capabilities"] == {"drop": ["ALL"]}
    assert container_security["readOnlyRootFilesystem"] is True


def test_the_serving_manifests_meet_the_restricted_pod_security_standard():
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text())}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    _restricted(pod["securityContext"], pod["containers"][0]["securityContext"])
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/models"]["readOnly"] and "/tmp" in mounts  # read-only root, a writable /tmp
    for service in yaml.safe_load_all((DEPLOY / "kserve.yaml").read_text()):
        predictor = service["spec"]["predictor"]
        _restricted(predictor["securityContext"], predictor["tensorflow"]["securityContext"])


@pytest.mark.slow
def test_a_standalone_spark_cluster_scores_value_for_value_as_local(titanic_run, titanic_data, tmp_path):
    """`make score`: a Spark standalone cluster (master + 2 workers from the pyspark wheel) started for the
    command; the same table as local[2], scored in executors on both workers; nothing left running after."""
    import subprocess

    import pandas as pd

    from core.processes import group_alive
    from serving import spark_batch
    from serving.spark_cluster import standalone_cluster

    model_dir = results.last_run("titanic", titanic_run).pushed_destination
    local = tmp_path / "local.parquet"
    spark = spark_batch.spark_session("local[2]")
    try:
        spark_batch.run(spark, model_dir, str(titanic_data / "test.csv"), str(local), batch_size=50)
    finally:
        spark.stop()
    out = tmp_path / "cluster.parquet"
    proc = subprocess.run(
        ["make", "-s", "score", f"INPUT={titanic_data / 'test.csv'}", f"OUTPUT={out}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, SERVING_DIR=str(Path(model_dir).parent.parent), OUTPUT_DIR=str(tmp_path / "outputs")),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"scoring on Spark standalone cluster at spark://localhost:\d+: 2 workers", proc.stdout)
    assert "scored 179 rows" in proc.stdout
    by_id = lambda frame: frame.sort_values("PassengerId").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(by_id(pd.read_parquet(out)), by_id(pd.read_parquet(local)))  # value for value
    logs = tmp_path / "outputs" / "logs" / "spark"
    for worker in ("spark-worker-1.log", "spark-worker-2.log"):
        assert "Asked to launch executor" in (logs / worker).read_text(), worker  # both workers ran executors
    found = subprocess.run(
        ["pgrep", "-f", f"deploy.(master|worker).*{tmp_path.name}|spark-cluster-"], capture_output=True, text=True
    ).stdout.split()
    assert not found
    with standalone_cluster(tmp_path / "logs", workers=1) as cluster:
        assert cluster.state()["aliveworkers"] == 1
        pids = [cluster.master.pid] + [w.pid for w in cluster.worker_services]
    assert not any(group_alive(pid) for pid in pids)


def test_an_unreachable_spark_master_is_one_line(tmp_path):
    from core.processes import free_port
    from serving import spark_batch

    port = free_port()
    with pytest.raises(spark_batch.ScoringError) as err:
        with spark_batch.where_to_score(f"spark://localhost:{port}", tmp_path):
            pytest.fail("no session may start")
    assert f"SPARK_MASTER=spark://localhost:{port}: no Spark master answers" in str(err.value)
    with pytest.raises(spark_batch.ScoringError, match="SPARK_WORKERS='0' must be a positive integer"):
        with spark_batch.where_to_score(None, tmp_path, env={"SPARK_WORKERS": "0"}):
            pass
