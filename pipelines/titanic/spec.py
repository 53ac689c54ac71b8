"""The Titanic pipeline: the book's split (train.csv / test.csv) read as the train and eval splits."""
from pathlib import Path

from tfx.proto import example_gen_pb2

from components.csv_example_gen import CsvExampleGen
from pipelines.spec import DatasetSpec
from pipelines.titanic import features


def make_example_gen(input_base: str, prefix: str = ""):
    return CsvExampleGen(
        input_base=input_base,
        input_config=example_gen_pb2.Input(
            splits=[
                example_gen_pb2.Input.Split(name="train", pattern=f"{prefix}train.csv"),
                example_gen_pb2.Input.Split(name="eval", pattern=f"{prefix}test.csv"),
            ]
        ),
    )


SPEC = DatasetSpec(
    name="titanic",
    dataset="titanic",
    make_example_gen=make_example_gen,
    preprocessing_fn="pipelines.titanic.features.preprocessing_fn",
    model_builder="pipelines.titanic.model.build_model",
    label_key=features.LABEL_KEY,
    raw_feature_keys=features.RAW_FEATURE_KEYS,
    problem="binary",
    schema_file=Path(__file__).resolve().parent / "schema.pbtxt",
    slice_features=("Sex", "Pclass"),
    epochs=10,
    batch_size=32,
)
