"""The IMDB pipeline: header-less `label<TAB>text` files, train.csv and test.csv as the train and eval splits."""

from components.delimited_example_gen import DelimitedExampleGen, column
from orchestration.spec import DatasetSpec
from pipelines.imdb import features

COLUMNS = [column(features.LABEL_KEY, "int", allowed=[0, 1]), column(features.TEXT_KEY, "string")]


def make_example_gen(input_base: str, prefix: str = ""):
    return DelimitedExampleGen(
        input_base=input_base, columns=COLUMNS, splits=[("train", f"{prefix}train.csv"), ("eval", f"{prefix}test.csv")]
    )


SPEC = DatasetSpec(
    name="imdb",
    dataset="imdb",
    make_example_gen=make_example_gen,
    preprocessing_fn="pipelines.imdb.features.preprocessing_fn",
    model_builder="pipelines.imdb.model.build_model",
    report_module="pipelines.imdb.report",
    label_key=features.LABEL_KEY,
    drift_thresholds={features.LABEL_KEY: 0.1},  # the class mix between spans (the raw text/images are unique per row)
    raw_feature_keys=[features.TEXT_KEY],
    problem="binary",
    schema_file=None,
    epochs=6,  # at most: the net overfits after one or two epochs, so training stops on held-out reviews
    batch_size=20,
    trainer_options={
        "holdout_every": 10,
        "early_stopping_patience": 1,
        "early_stopping_monitor": "val_loss",
        "cache_examples": True,
    },
)
