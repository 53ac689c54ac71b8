"""Stops the run when ExampleValidator found anomalies, with a message that names each one; and, when the
data folder holds spans, when DriftCheck found drift and the dataset's drift action is "block".

ExampleValidator only records anomalies (and a per-split `blessed` property); nothing downstream reads them,
so on its own a dropped column or a new category would flow on into Transform and training. The factory
makes Transform wait on this gate, so an anomaly ends the run before any training and nothing is pushed.
Drift under "warn" is logged here and shown by the run summary, the report and `make lineage`.
"""

import os
from typing import Dict, List, Tuple

from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts

from components import drift_check
from core.data_errors import DataError

SCHEMA_DIFF_FILE = "SchemaDiff.pb"


class DataAnomaliesError(DataError):
    """The data does not match the schema; the message lists every anomaly by split and feature."""


class DataDriftError(DataError):
    """The new span drifted from the previous one and drift blocks this dataset; names feature, distance and
    threshold."""


def read_anomalies(artifact: standard_artifacts.ExampleAnomalies) -> Dict[str, anomalies_pb2.Anomalies]:
    found = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), SCHEMA_DIFF_FILE)
        with fileio.open(path, "rb") as f:  # any file system TensorFlow reads: the run's root may be gs:// or s3://
            found[split] = anomalies_pb2.Anomalies.FromString(f.read())
    return found


def describe(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]) -> List[str]:
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reasons = "; ".join(f"{r.short_description}: {r.description}" for r in info.reason) or info.description
            lines.append(f"split '{split}', feature '{feature}': {reasons}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            reasons = "; ".join(f"{r.short_description}: {r.description}" for r in info.reason) or info.description
            lines.append(f"split '{split}', whole dataset: {reasons}")
    return lines


def drift_lines(drift_artifact) -> Tuple[List[str], dict]:

    result = drift_check.read_result(drift_artifact)
    return [d.describe() for d in result["features"] if d.flagged], result


@component
def AnomaliesGate(
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    drift: InputArtifact[standard_artifacts.ExampleAnomalies] = None,
    drift_action: Parameter[str] = "warn",
):
    """Raises DataAnomaliesError listing every anomaly, or DataDriftError listing every drifted feature
    when drift_action is "block"; otherwise returns (drift is logged as a warning).

    inputs      anomalies (ExampleAnomalies, from ExampleValidator), drift (optional, from DriftCheck)
    outputs     none (Transform depends on this node, so it runs only after the gate passed)
    parameters  drift_action: warn, block or off
    """
    problems = describe(read_anomalies(anomalies))
    if problems:
        raise DataAnomaliesError(
            "ExampleValidator found anomalies; stopping before Transform/Trainer, nothing will be pushed:\n  "
            + "\n  ".join(problems)
        )
    if drift is None or drift_action == "off":
        return
    drifted, result = drift_lines(drift)
    if not drifted:
        return
    where = f"span {result['current_span']} against span {result['previous_span']} ({result['split']} split)"
    if drift_action == "block":
        raise DataDriftError(
            f"{where} drifted (DRIFT=block); stopping before Transform/Trainer, nothing will be pushed:\n  "
            + "\n  ".join(drifted)
        )
    message = f"{where} drifted (DRIFT=warn: training goes on; DRIFT=block stops): " + "; ".join(drifted)
    logging.warning(message)
    print(f"[drift] WARNING {message}", flush=True)  # a project line: `make run` shows it as the run goes
