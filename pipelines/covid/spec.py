"""The COVID-19 pipeline: windows of daily increments, the last ones (by date) as the eval split."""

from components.window_example_gen import TARGET_KEY, WINDOW_KEY, WindowExampleGen
from orchestration.spec import DatasetSpec
from pipelines.covid import features

FILE_NAME = "covid-19.csv"


def make_example_gen(input_base: str, prefix: str = ""):
    return WindowExampleGen(
        input_base=input_base,
        file_pattern=f"{prefix}{FILE_NAME}",
        date_column="date",
        value_columns=features.COLUMNS,
        window_size=features.WINDOW_SIZE,
        eval_windows=features.EVAL_WINDOWS,
    )


SPEC = DatasetSpec(
    name="covid",
    dataset="covid",
    make_example_gen=make_example_gen,
    preprocessing_fn="pipelines.covid.features.preprocessing_fn",
    model_builder="pipelines.covid.model.build_model",
    report_module="pipelines.covid.report",
    label_key=TARGET_KEY,
    raw_feature_keys=[WINDOW_KEY],
    problem="regression",
    regression_metric="mspe",  # the book's loss: counts grow by orders of magnitude, so errors are relative
    schema_file=None,
    epochs=500,  # at most, as the book: EarlyStopping and ReduceLROnPlateau on the training loss
    batch_size=38,  # the book's: all training windows in one batch
    # The book's 3-unit LSTM stack often stalls on a plateau. Of seeds 1, 2, 3 and 42, seed 1 reached the lowest
    # *training* MSPE (0.27; seed 42: 0.46), so it is this pipeline's default. The eval split played no part.
    seed=1,
    trainer_options={
        "early_stopping_patience": 200,
        "early_stopping_monitor": "loss",
        "restore_best_weights": False,
        "reduce_lr_patience": 100,
        "reduce_lr_monitor": "loss",
        "reduce_lr_factor": 0.5,
        "raw_shapes": {WINDOW_KEY: [features.WINDOW_SIZE, len(features.COLUMNS)]},
    },
)
