"""Training on several devices or processes (tf.distribute), and mixed precision.

Logical CPU devices and the multi-worker runtime must be set up before TensorFlow starts,
so those tests run in fresh interpreters (`sys.executable`), each with a timeout: a hang
fails instead of blocking the suite.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from conftest import TINY_CONFIG

from seq2seq_attn import distribute
from seq2seq_attn.cli import main
from seq2seq_attn.config import precision_policy, resolve_config
from seq2seq_attn.errors import UserError

TIMEOUT_S = 300  # per subprocess; normal runs take well under a minute
# Equal steps on one and on two devices: max |weight difference| allowed after 3 Adam steps.
WEIGHT_ATOL = 1e-5


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    """The tiny dates model on fewer pairs: a one-epoch run is mostly start-up time."""
    config = {**TINY_CONFIG, "data": {"size": 240}}
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_python(args, timeout=TIMEOUT_S, **kwargs):
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def last_json_line(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


# Runs in a fresh interpreter: 2 logical CPU devices, then the same steps from the same
# initial weights on one device and mirrored over both.
MIRRORED_CHECKS = textwrap.dedent(
    """
    import json
    from types import SimpleNamespace

    from seq2seq_attn import distribute
    distribute.split_cpu(2)

    import keras
    import numpy as np
    import tensorflow as tf

    from seq2seq_attn.config import resolve_config
    from seq2seq_attn.training import build_model

    config = resolve_config({
        "model": {"embedding_dim": 8, "units": 12, "attention_units": 12},
        # clipnorm small enough to clip: per-replica clipping would change the steps.
        # float32 on every machine: steps compared to 1e-5 (the default, auto, is bfloat16
        # on a CPU with AMX).
        "training": {
            "learning_rate": 0.01,
            "clipnorm": 0.05,
            "label_smoothing": 0.1,
            "mixed_precision": False,
        },
    })
    vocab = SimpleNamespace(
        source=SimpleNamespace(vocab_size=20), target=SimpleNamespace(vocab_size=18)
    )
    rng = np.random.default_rng(0)
    lengths = [7, 6, 5, 2, 2, 1]  # the replicas' halves hold different numbers of tokens
    source = np.zeros((6, 9), "int32")
    target = np.zeros((6, 9), "int32")  # y_1 .. y_n [END]
    for row, n in enumerate(lengths):
        source[row, : n + 2] = rng.integers(4, 20, n + 2)
        target[row, : n + 1] = np.append(rng.integers(4, 18, n), 3)
    target_in = np.concatenate([np.full((6, 1), 2), np.where(target == 3, 0, target)[:, :-1]], 1)
    batch = ((source, target_in.astype("int32")), target)
    steps = tf.data.Dataset.from_tensors(batch).repeat(3)
    uneven = [  # batches of 3 and 1 rows: replicas get 2 and 1, and 1 and 0 rows
        tf.data.Dataset.from_tensors(tf.nest.map_structure(lambda a: a[:n], batch))
        for n in (3, 1)
    ]

    def trained(strategy, plain_adam=False):
        keras.utils.set_random_seed(1)
        model = build_model(config, vocab, strategy)
        if plain_adam:  # what Keras does by itself: clip each replica's share
            with strategy.scope():
                model.compile(keras.optimizers.Adam(0.01, clipnorm=0.05), label_smoothing=0.1)
        distribute.prepare_fit(model, strategy)
        with strategy.scope():
            loss = model.fit(steps, verbose=0).history["loss"][0]
            if plain_adam:
                return model, loss, []
            return model, loss, [model.evaluate(d, verbose=0)[0] for d in uneven]

    one, one_loss, one_eval = trained(distribute.make_strategy(None))
    mirrored = distribute.make_strategy("mirrored")
    two, two_loss, two_eval = trained(mirrored)
    plain, _, _ = trained(mirrored, plain_adam=True)

    def max_diff(a, b):
        return max(float(np.abs(x - y).max()) for x, y in zip(a.get_weights(), b.get_weights()))

    # One replica overflows in float16, the other does not: both must skip the step.
    lso = distribute.CrossReplicaLossScaleOptimizer(keras.optimizers.Adam())
    grads = mirrored.experimental_distribute_values_from_function(
        lambda ctx: [tf.constant([1.0, np.inf if ctx.replica_id_in_sync_group else 2.0])]
    )
    finite = mirrored.run(tf.function(lso.check_finite, autograph=False), args=(grads,))
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "optimizer": type(two.optimizer).__name__,
        "loss": [one_loss, two_loss],
        "uneven_eval": [one_eval, two_eval],
        "weight_diff": max_diff(one, two),
        "plain_adam_weight_diff": max_diff(one, plain),
        "finite": [bool(f) for f in mirrored.experimental_local_results(finite)],
    }))
    """
)


def test_mirrored_steps_equal_one_device_steps():
    out = last_json_line(run_python(["-c", MIRRORED_CHECKS]))
    assert out["replicas"] == 2 and out["optimizer"] == "CrossReplicaAdam"
    np.testing.assert_allclose(out["loss"][1], out["loss"][0], rtol=1e-6)
    assert out["weight_diff"] < WEIGHT_ATOL, out
    # The evaluated loss of batches that split unevenly is the global-batch mean too.
    np.testing.assert_allclose(out["uneven_eval"][1], out["uneven_eval"][0], rtol=1e-5)
    # Keras' own clipping of each replica's share gives different weights: the test sees it.
    assert out["plain_adam_weight_diff"] > 100 * WEIGHT_ATOL, out
    assert out["finite"] == [False, False]


# The upstream bugs `distribute.prepare_fit` works around, reproduced without the workaround
# in a fresh interpreter with 2 logical CPU devices; a `fit` that shows a bug runs again with
# the workaround, which must make it pass.
UPSTREAM_BUGS_MIRRORED = textwrap.dedent(
    """
    import json

    from seq2seq_attn import distribute
    distribute.split_cpu(2)

    import keras
    import numpy as np
    import tensorflow as tf

    mirrored = distribute.make_strategy("mirrored")
    # 3 rows: the replicas get 2 and 1.
    uneven = tf.data.Dataset.from_tensors((np.ones((3, 2), "f4"), np.ones((3, 1), "f4")))

    def error_of(run):
        try:
            run()
        except Exception as err:  # the bug: reported to the test
            return f"{type(err).__name__}: {err}"
        return None

    def fit_uneven(workaround):
        with mirrored.scope():
            model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
            model.compile("sgd", "mse")
        if workaround:
            distribute.forget_creation_strategy(model)
        with mirrored.scope():
            model.fit(uneven, verbose=0)

    scalars = mirrored.run(lambda: tf.constant(1.0))  # a metric result per replica
    print(json.dumps({
        "build_peek": error_of(lambda: fit_uneven(workaround=False)),
        "build_peek_workaround": error_of(lambda: fit_uneven(workaround=True)),
        "scalar_mean": error_of(lambda: mirrored.reduce("MEAN", scalars, axis=0)),
    }))
    """
)

# Runs in each worker process of a loopback cluster: one fit with Keras' own train function,
# then one with the workaround's.
UPSTREAM_BUG_ACROSS_WORKERS = textwrap.dedent(
    """
    import json

    from seq2seq_attn import distribute
    strategy = distribute.make_strategy("multi-worker")

    import keras
    import numpy as np
    import tensorflow as tf

    with strategy.scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
    distribute.forget_creation_strategy(model)  # not the bug under test
    rows = tf.data.Dataset.from_tensors((np.ones((4, 2), "f4"), np.ones((4, 1), "f4")))

    def error_of_fit():
        try:
            with strategy.scope():
                model.fit(rows, verbose=0)
        except Exception as err:  # the bug: reported to the test
            return f"{type(err).__name__}: {err}"
        return None

    scalar_logs = error_of_fit()
    distribute.use_first_replica_logs(model, strategy)
    print(json.dumps({"scalar_logs": scalar_logs, "scalar_logs_workaround": error_of_fit()}))
    """
)


@pytest.fixture(scope="module")
def upstream_bugs_mirrored():
    return last_json_line(run_python(["-c", UPSTREAM_BUGS_MIRRORED]))


def expect_upstream_bug(bug, error, fragment, workaround):
    """Fails, saying what to change, unless `error` is the error `bug` still gives."""
    versions = f"Keras {keras.__version__} (TensorFlow {tf.__version__})"
    if error is None:
        pytest.fail(
            f"upstream bug {bug} fixed in {versions}: remove the workaround distribute.{workaround}"
        )
    assert fragment in error, f"{bug} reproduces differently in {versions}: {error[-2000:]}"
    if not distribute.workarounds_checked(keras.__version__):
        minor = ".".join(keras.__version__.split(".")[:2])
        pytest.fail(
            f"upstream bug {bug} still present in {versions}: once every test here passes "
            f"on it, add {minor!r} to distribute.WORKAROUND_KERAS"
        )


@pytest.mark.canary
def test_upstream_keras_20585_build_peek_still_fails_on_uneven_batches(upstream_bugs_mirrored):
    # Keras averages a peeked batch over the replicas, whose halves have 2 and 1 rows.
    assert upstream_bugs_mirrored["build_peek_workaround"] is None, upstream_bugs_mirrored
    expect_upstream_bug(
        distribute.BUILD_PEEK_BUG,
        upstream_bugs_mirrored["build_peek"],
        "must have the same size and shape",
        "forget_creation_strategy",
    )


@pytest.mark.canary
def test_upstream_tf_72388_mean_over_the_batch_axis_still_rejects_scalars(
    upstream_bugs_mirrored,
):
    # What Keras does to every step's logs across workers; any multi-replica strategy shows it.
    expect_upstream_bug(
        distribute.SCALAR_LOGS_BUG,
        upstream_bugs_mirrored["scalar_mean"],
        "Invalid reduction dimension 0 for input with 0 dimensions",
        "use_first_replica_logs",
    )


@pytest.mark.canary
def test_upstream_tf_72388_still_breaks_fit_across_workers():
    # The same bug as Keras meets it: a fix in Keras or in TensorFlow shows here.
    workers = distribute.loopback_workers(2)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UPSTREAM_BUG_ACROSS_WORKERS],
            env={
                **os.environ,
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
                ),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        assert result["scalar_logs_workaround"] is None, result
        expect_upstream_bug(
            distribute.SCALAR_LOGS_BUG,
            result["scalar_logs"],
            "Invalid reduction dimension 0 for input with 0 dimensions",
            "use_first_replica_logs",
        )


def test_unchecked_keras_warns_once_and_still_gets_the_workarounds(monkeypatch):
    assert distribute.workarounds_checked("3.15.1")
    assert not distribute.workarounds_checked("3.16.0")
    assert not distribute.workarounds_checked("3.1.5")
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert model.distribute_strategy is not tf.distribute.get_strategy()  # the mirrored one
    with pytest.warns(UserWarning) as record:
        distribute.prepare_fit(model, tf.distribute.get_strategy())
        distribute.prepare_fit(model, tf.distribute.get_strategy())
    ours = [w for w in record if "not on 3.99.0" in str(w.message)]
    assert len(ours) == 1 and ours[0].filename == __file__, [str(w.message) for w in record]
    assert model.distribute_strategy is tf.distribute.get_strategy()  # forgotten


def test_cli_trains_mirrored_over_two_cpu_devices(small_config, tmp_path):
    from seq2seq_attn.translator import Translator

    out = tmp_path / "run"
    argv = ["train", "--data", "dates", "--config", str(small_config), "--out", str(out)]
    result = run_python(
        ["-m", "seq2seq_attn.cli", *argv, "--strategy", "mirrored", "--cpu-devices", "2"]
    )
    assert "mirrored strategy: 2 replicas" in result.stdout
    info = json.loads((out / "run.json").read_text())
    assert info["strategy"] == "mirrored" and info["num_replicas"] == 2 and info["workers"] == 1
    assert np.isfinite(info["best_val_loss"])
    assert not (out / "backup").exists()
    assert len(Translator.load(out).translate(["3 March 2021"])) == 1


def test_loopback_workers_are_distinct_free_addresses():
    workers = distribute.loopback_workers(3)
    assert len(set(workers)) == 3
    for address in workers:
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and 0 < int(port) < 65536
        with socket.socket() as s:
            s.bind((host, int(port)))  # free: nothing holds it


@pytest.mark.slow  # 1-2 min on 2 cores, much of it TensorFlow's multi-worker shutdown
def test_two_workers_on_loopback_train_one_model(small_config, tmp_path):
    # Same command on both "machines" (working directories); TF_CONFIG tells each its place.
    workers = distribute.loopback_workers(2)
    argv = ["-m", "seq2seq_attn.cli", "train", "--data", "dates", "--config", str(small_config)]
    argv += ["--out", "run", "--strategy", "multi-worker"]
    procs = []
    for index in range(2):
        home = tmp_path / f"machine{index}"
        (home / "tmp").mkdir(parents=True)
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(home / "tmp")}
        procs.append(
            subprocess.Popen(
                [sys.executable, *argv],
                cwd=home,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    chief = tmp_path / "machine0" / "run"
    info = json.loads((chief / "run.json").read_text())
    assert info["strategy"] == "multi-worker"
    assert info["num_replicas"] == 2 and info["workers"] == 2
    assert (chief / "model.keras").exists() and not (chief / "backup").exists()
    assert len((chief / "history.csv").read_text().splitlines()) == 2  # header + 1 epoch
    # The other worker wrote its checkpoints and logs to a scratch directory, then removed it.
    assert not (tmp_path / "machine1" / "run").exists()
    assert list((tmp_path / "machine1" / "tmp").iterdir()) == []


def expect_user_error(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_multi_worker_without_tf_config_exits_2(small_config, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    argv = ["train", "--data", "dates", "--config", str(small_config), "--out", str(tmp_path)]
    expect_user_error(capsys, argv + ["--strategy", "multi-worker"], "TF_CONFIG")
    monkeypatch.setenv("TF_CONFIG", "{'cluster': 1}")
    expect_user_error(capsys, argv + ["--strategy", "multi-worker"], "TF_CONFIG", "JSON")
    expect_user_error(capsys, argv + ["--cpu-devices", "2"], "--cpu-devices", "mirrored")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "tf_config, fragment",
    [
        ("[]", "JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', '"cluster"'),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "'ps'"),
        ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}', "list"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
        ('{"cluster": {"worker": ["a:1"]}}', '"task"'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "'chief'"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "0 to 0"),
        (
            '{"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}',
            "at most",
        ),
    ],
)
def test_malformed_tf_config_names_the_problem(tf_config, fragment):
    with pytest.raises(UserError, match="TF_CONFIG") as err:
        distribute.read_tf_config({"TF_CONFIG": tf_config})
    assert fragment in str(err.value)


def test_the_chief_is_the_chief_task_else_worker_0():
    two_workers = {"worker": ["a:1", "b:1"]}
    with_chief = {"chief": ["c:1"], **two_workers}
    assert distribute.is_chief({"cluster": two_workers, "task": {"type": "worker", "index": 0}})
    assert not distribute.is_chief({"cluster": two_workers, "task": {"type": "worker", "index": 1}})
    assert distribute.is_chief({"cluster": with_chief, "task": {"type": "chief", "index": 0}})
    assert not distribute.is_chief({"cluster": with_chief, "task": {"type": "worker", "index": 0}})
    single = distribute.current_task(distribute.make_strategy(None))
    assert single.chief and single.workers == 1


def test_unknown_strategy_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "dates", "--out", "x", "--strategy", "horovod"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'horovod'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "training, fragment",
    [
        ({"mixed_precision": "float16"}, "auto, mixed_float16 or mixed_bfloat16"),
        ({"mixed_precision": 1}, "mixed_precision"),
        ({"strategy": "horovod"}, "multi-worker"),
    ],
)
def test_bad_training_values_are_user_errors(training, fragment):
    with pytest.raises(UserError, match=fragment):
        resolve_config({"training": training})


def test_precision_policies():
    assert precision_policy(False) == "float32"
    assert precision_policy(True) == "mixed_float16"
    assert precision_policy("mixed_bfloat16") == "mixed_bfloat16"


def test_auto_precision_is_bfloat16_on_a_cpu_with_bfloat16_units_only(tmp_path, monkeypatch):
    from seq2seq_attn import config

    amx, epyc, avx2 = tmp_path / "amx", tmp_path / "epyc", tmp_path / "avx2"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    epyc.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 sha_ni\n")
    avx2.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\nbugs\t\t: amx_bf16\n")
    assert config.cpu_has_bf16_units(amx) and config.cpu_has_bf16_units(epyc)
    assert not config.cpu_has_bf16_units(avx2)  # a flag outside the `flags` line is not one
    assert not config.cpu_has_bf16_units(tmp_path / "missing")
    for has_units, gpus, policy in [
        (True, 0, "mixed_bfloat16"),
        (True, 1, "float32"),  # a GPU's policy is the user's to set
        (False, 0, "float32"),
    ]:
        monkeypatch.setattr(config, "cpu_has_bf16_units", lambda has=has_units: has)
        assert precision_policy("auto", gpus=gpus) == policy
    assert resolve_config({"training": {"mixed_precision": "auto"}})  # a valid value


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_logits(policy):
    from types import SimpleNamespace

    from seq2seq_attn.training import build_model

    config = resolve_config(
        {
            "model": {"embedding_dim": 8, "units": 12, "rnn": "lstm", "dropout": 0.1},
            "training": {"mixed_precision": policy, "learning_rate": 0.01},
        }
    )
    vocab = SimpleNamespace(
        source=SimpleNamespace(vocab_size=16), target=SimpleNamespace(vocab_size=18)
    )
    source = np.array([[4, 5, 6, 7], [8, 9, 0, 0]], "int32")
    target_in = np.array([[2, 10, 11, 12, 13], [2, 14, 15, 0, 0]], "int32")
    target_out = np.array([[10, 11, 12, 13, 3], [14, 15, 3, 0, 0]], "int32")
    data = tf.data.Dataset.from_tensors(((source, target_in), target_out)).repeat(5)
    try:
        model = build_model(config, vocab)
        history = model.fit(data, verbose=0)
        logits = model((source, target_in))
        assert model.decoder_cell.rnn_cell.compute_dtype == policy.split("_")[1]
        # the 768x5000-like output product runs on the 16-bit units too
        assert model.decoder_cell.output_layer.compute_dtype == policy.split("_")[1]
        assert all(w.dtype == "float32" for w in model.trainable_weights)
        assert logits.dtype == "float32" and np.all(np.isfinite(logits))
        assert np.isfinite(history.history["loss"][0])
        assert np.all(np.isfinite(model.generate(source, max_length=5)["scores"]))
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_worker_scratch_dir_is_fixed_per_run_and_task(tmp_path):
    task = distribute.Task(type="worker", index=1, chief=False, workers=2)
    here = distribute.worker_scratch_dir(tmp_path / "run", task)
    assert here == distribute.worker_scratch_dir(Path(tmp_path) / "." / "run", task)
    assert here != distribute.worker_scratch_dir(tmp_path / "other", task)
    assert tmp_path / "run" not in here.parents
