"""The one Trainer `run_fn` every dataset uses (the factory names it by dotted path): TFX's FnArgs turned into
the plain arguments of components/training.train, which does the work and can run without TFX."""

from __future__ import annotations

from tfx.components.trainer.fn_args_utils import FnArgs  # not tfx.v1: see orchestration/factory.py

from core.keras_env import require_legacy_keras
from modeling import training


def run_fn(fn_args: FnArgs) -> None:
    """Trains and exports the model TFX asks for.

    fn_args: TFX's trainer arguments: custom_config (the TrainerSettings, as the factory built them),
        transform_graph_path, train_files, eval_files, model_run_dir, serving_model_dir, base_model (the
        ServedBaseline's model, for warm starts) and data_accessor (how TFX reads examples).
    """
    require_legacy_keras()
    settings = training.TrainerSettings.from_custom_config(fn_args.custom_config)
    training.train(
        settings,
        fn_args.transform_graph_path,
        fn_args.train_files,
        fn_args.eval_files,
        fn_args.model_run_dir,
        fn_args.serving_model_dir,
        base_model=fn_args.base_model,
        dataset_factory=fn_args.data_accessor.tf_dataset_factory,
    )
