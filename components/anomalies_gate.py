"""Stops the run when ExampleValidator found anomalies, with a message that names each one.

ExampleValidator only records anomalies (and a per-split `blessed` property); nothing downstream reads them,
so on its own a dropped column or a new category would flow on into Transform and training. The factory
makes Transform wait on this gate, so an anomaly ends the run before any training and nothing is pushed.
"""

import os
from typing import Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

SCHEMA_DIFF_FILE = "SchemaDiff.pb"


class DataAnomaliesError(RuntimeError):
    """The data does not match the schema; the message lists every anomaly by split and feature."""


def read_anomalies(artifact: standard_artifacts.ExampleAnomalies) -> Dict[str, anomalies_pb2.Anomalies]:
    found = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), SCHEMA_DIFF_FILE)
        with open(path, "rb") as f:
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


@component
def AnomaliesGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]):
    """Raises DataAnomaliesError listing every anomaly; returns quietly when there are none.

    inputs      anomalies (ExampleAnomalies, from ExampleValidator)
    outputs     none (Transform depends on this node, so it runs only after the gate passed)
    parameters  none
    """
    problems = describe(read_anomalies(anomalies))
    if problems:
        raise DataAnomaliesError(
            "ExampleValidator found anomalies; stopping before Transform/Trainer, nothing will be pushed:\n  "
            + "\n  ".join(problems)
        )
