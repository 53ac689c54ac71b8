"""TFX's Evaluator, given its baseline by ServedBaseline, and saying which served version that was.

On a first run ServedBaseline's `model` is an empty folder (every orchestrator records an output artifact for
every declared output, KFP included: backend/src/v2/component/launcher_v2.go, uploadOutputArtifacts). TFX's
Evaluator treats any `baseline_model` input as a model to load, so this executor drops an empty one: the
evaluation then runs without a baseline and TFMA leaves the change thresholds out, exactly as with no baseline.

Component
    inputs      as TFX's Evaluator (examples, model, baseline_model from ServedBaseline, schema)
    outputs     evaluation, blessing (ModelEvaluation, ModelBlessing), both with custom property
                `baseline_version`: the served version the model was judged against, "" for none.
    parameters  as TFX's Evaluator (eval_config, ...).
"""

from __future__ import annotations

from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs

from components import served_baseline

BASELINE_VERSION = "baseline_version"


class Executor(evaluator_executor.Executor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        key = standard_component_specs.BASELINE_MODEL_KEY
        baselines = [a for a in input_dict.get(key, []) if served_baseline.holds_model(a)]
        inputs = {k: v for k, v in input_dict.items() if k != key}
        version = ""
        if baselines:
            inputs[key] = baselines
            version = served_baseline.served_version(baselines[0])
        print(f"[evaluator] baseline: {'served version ' + version if version else 'none (first model)'}", flush=True)
        logging.info("Evaluator baseline: %s", version or "none")
        super().Do(inputs, output_dict, exec_properties)
        for name in (standard_component_specs.EVALUATION_KEY, standard_component_specs.BLESSING_KEY):
            for artifact in output_dict.get(name, []):
                artifact.set_string_custom_property(BASELINE_VERSION, version)


class Evaluator(evaluator_component.Evaluator):
    """See the module docstring."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
