"""The cifar2 pipeline: `train/` and `test/` folders of JPEGs as the train and eval splits."""

from components.image_example_gen import IMAGE_KEY, LABEL_KEY, ImageExampleGen
from orchestration.spec import DatasetSpec
from pipelines.cifar2 import features


def make_example_gen(input_base: str, prefix: str = ""):
    return ImageExampleGen(
        input_base=input_base,
        class_names=features.CLASS_NAMES,
        splits=[("train", f"{prefix}train"), ("eval", f"{prefix}test")],
    )


SPEC = DatasetSpec(
    name="cifar2",
    dataset="cifar2",
    make_example_gen=make_example_gen,
    preprocessing_fn="pipelines.cifar2.features.preprocessing_fn",
    model_builder="pipelines.cifar2.model.build_model",
    report_module="pipelines.cifar2.report",
    label_key=LABEL_KEY,
    drift_thresholds={LABEL_KEY: 0.1},  # the class mix between spans (the raw text/images are unique per row)
    raw_feature_keys=[IMAGE_KEY],
    problem="binary",
    schema_file=None,  # inferred by SchemaGen: three plain features, nothing to curate
    epochs=15,  # at most: training stops when held-out training images stop improving (4 epochs)
    batch_size=100,
    # every 10th training image held out (never the test images the Evaluator judges) to choose the epoch and
    # halve the learning rate when validation loss stalls for 2 epochs
    trainer_options={
        "holdout_every": 10,
        "early_stopping_patience": 4,
        "early_stopping_monitor": "val_loss",
        "reduce_lr_patience": 2,
        "reduce_lr_monitor": "val_loss",
        "cache_examples": True,
    },
)
