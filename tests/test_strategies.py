import json
import textwrap

import pytest


def test_default_and_unknown():
    import tensorflow as tf

    from modeling import strategies

    assert strategies.get_strategy("default") is tf.distribute.get_strategy()
    assert strategies.describe(strategies.get_strategy("default"))["num_replicas"] == 1
    with pytest.raises(ValueError, match="unknown strategy 'gpu'; choose one of default, mirrored"):
        strategies.get_strategy("gpu")


def test_tpu_without_hardware_is_a_clear_error():
    from modeling import strategies

    with pytest.raises(strategies.StrategyUnavailable, match="STRATEGY=tpu needs a TPU, and none was found"):
        strategies.get_strategy("tpu", tpu="")


def test_bad_tf_config_is_named(monkeypatch):
    from modeling import strategies

    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(strategies.StrategyUnavailable, match="TF_CONFIG is not valid JSON"):
        strategies.get_strategy("multi_worker_mirrored")


def test_mirrored_runs_both_replicas_on_two_logical_cpus(run_python):
    # Logical devices must be declared before TensorFlow starts, hence a fresh process.
    code = textwrap.dedent("""
        import json, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from modeling import strategies
        strategy = strategies.get_strategy("mirrored")
        with strategy.scope():
            model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(1, activation="sigmoid")])
            model.compile("adam", "binary_crossentropy")
            seen = tf.Variable(0.0, synchronization=tf.VariableSynchronization.ON_READ,
                               aggregation=tf.VariableAggregation.SUM)
        x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        y = (x[:, 0] > 0).astype("float32")
        ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(16))

        @tf.function
        def step(batch):
            def replica_fn(inputs):
                features, _ = inputs
                seen.assign_add(tf.cast(tf.shape(features)[0], tf.float32))
                return tf.distribute.get_replica_context().replica_id_in_sync_group
            return strategy.run(replica_fn, args=(batch,))

        replica_ids = set()
        for batch in ds:
            ids = strategy.experimental_local_results(step(batch))
            replica_ids.update(int(i) for i in ids)
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        print(json.dumps({"describe": strategies.describe(strategy), "replica_ids": sorted(replica_ids),
                          "examples_seen": float(seen.numpy()), "loss": history.history["loss"]}))
    """)
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["describe"]["num_replicas"] == 2
    assert out["describe"]["devices"] == [
        "/job:localhost/replica:0/task:0/device:CPU:0",
        "/job:localhost/replica:0/task:0/device:CPU:1",
    ]
    assert out["replica_ids"] == [0, 1]  # both replicas ran the step
    assert out["examples_seen"] == 64.0  # and between them saw every example exactly once
    assert len(out["loss"]) == 2
