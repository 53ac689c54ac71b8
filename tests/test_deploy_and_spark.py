"""Deployment manifests agree with the project; Spark bulk scoring equals in-process scoring."""
import re

import numpy as np
import pytest
import yaml

from pipelines.metadata import results
from pipelines.config import PROJECT_ROOT
from pipelines.registry import PIPELINES
from serving.server import DEFAULT_GRPC_PORT, DEFAULT_REST_PORT

DEPLOY = PROJECT_ROOT / "serving" / "deploy"


def config_models(text: str):
    return re.findall(r'config \{ name: "([^"]+)" base_path: "([^"]+)" model_platform: "tensorflow" \}', text)


def test_tf_serving_model_config_lists_every_pipeline():
    models = config_models((DEPLOY / "models.config").read_text())
    assert models == [(name, f"/models/{name}") for name in PIPELINES]


def test_docker_command_mounts_the_serving_dir_and_uses_the_ports():
    script = (DEPLOY / "docker-run.sh").read_text()
    assert f"-p {DEFAULT_GRPC_PORT}:8500" in script and f"-p {DEFAULT_REST_PORT}:8501" in script
    assert '-v "$serving_dir:/models:ro"' in script and "outputs/serving" in script
    assert "--model_config_file=/config/models.config" in script
    assert re.search(r"tensorflow/serving:2\.16\.\d", script)  # the TF the models were trained with


def test_kubernetes_manifests_are_consistent():
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Deployment", "Service"}
    assert config_models(kinds["ConfigMap"]["data"]["models.config"]) == config_models(
        (DEPLOY / "models.config").read_text())
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": DEFAULT_GRPC_PORT,
                                                                           "http": DEFAULT_REST_PORT}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/models", "/config", "/tmp"}
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"] == kinds["Service"]["spec"]["selector"]
    assert {p["name"]: p["targetPort"] for p in kinds["Service"]["spec"]["ports"]} == {"grpc": DEFAULT_GRPC_PORT,
                                                                                       "http": DEFAULT_REST_PORT}
    assert container["readinessProbe"]["httpGet"]["port"] == DEFAULT_REST_PORT


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
        rows = spark_batch.run(spark, model_dir, str(titanic_data / "test.csv"), str(tmp_path / "scored.parquet"),
                               batch_size=50)
    finally:
        spark.stop()
    assert rows == 179
    scored = pd.read_parquet(tmp_path / "scored.parquet")  # CSV columns stay text: the model's dtypes decide
    scored = scored.assign(order=scored["PassengerId"].astype(int)).sort_values("order").drop(columns="order")
    source = pd.read_csv(titanic_data / "test.csv").sort_values("PassengerId")
    assert list(scored.columns) == list(source.columns) + ["probability"]
    fn = tf.saved_model.load(model_dir).signatures["serving_raw"]
    expected = fn(
        Age=tf.constant(source["Age"].to_numpy(np.float32)), Fare=tf.constant(source["Fare"].to_numpy(np.float32)),
        Pclass=tf.constant(source["Pclass"].to_numpy(np.int64)), SibSp=tf.constant(source["SibSp"].to_numpy(np.int64)),
        Parch=tf.constant(source["Parch"].to_numpy(np.int64)), Sex=tf.constant(source["Sex"].tolist()),
        Embarked=tf.constant(source["Embarked"].fillna("").tolist()), Ticket=tf.constant(source["Ticket"].tolist()),
        Cabin=tf.constant(source["Cabin"].fillna("").tolist()))["probability"].numpy().ravel()
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
