"""Choosing and creating the `tf.distribute` strategy a training run uses.

    null / "default"  one device: the first GPU if there is one, else the CPU.
    "mirrored"        synchronous data parallelism on one machine (`MirroredStrategy`)
                      over every GPU, or, without GPUs, over the logical CPU devices
                      `split_cpu` made (one CPU device unless it was called).
    "multi-worker"    the same across machines (`MultiWorkerMirroredStrategy`), one
                      process per machine, each told the cluster and its own place in it
                      by the `TF_CONFIG` environment variable.

Every replica runs the same model on its slice of the global batch and the gradients are
summed across replicas before each update, so `training.batch_size` stays the global batch.

The order matters to TensorFlow: `split_cpu` and `make_strategy("multi-worker")` must run
before anything initialises the TensorFlow runtime (before the first op or tensor).

Example, on one machine with 2 logical CPU devices:

>>> split_cpu(2)
['/device:CPU:0', '/device:CPU:1']
>>> make_strategy("mirrored").num_replicas_in_sync
2
"""

import functools
import hashlib
import json
import os
import socket
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import keras
import tensorflow as tf

from seq2seq_attn import _compat
from seq2seq_attn.config import STRATEGIES
from seq2seq_attn.errors import UserError
from seq2seq_attn.optimizers import WarmUpAverage

_compat.check_keras()  # a Keras that moved a private name used here stops at import

# Job names MultiWorkerMirroredStrategy trains with (TF_CONFIG may have no others).
WORKER_JOBS = ("chief", "worker")

# The Keras versions (major.minor) the workarounds of `prepare_fit` were written and checked
# for: there tests/test_distribute.py reproduces each upstream bug without its workaround and
# trains with it. Add a version once those tests pass on it; drop a workaround once they say
# its bug is fixed.
WORKAROUND_KERAS = ("3.15",)
BUILD_PEEK_BUG = "keras-team/keras#20585"
SCALAR_LOGS_BUG = "tensorflow/tensorflow#72388"


class Task(NamedTuple):
    """This process's place in the cluster; a single-process run is its own chief."""

    type: str | None  # "chief" or "worker"; None outside a multi-worker cluster
    index: int
    chief: bool  # writes the run directory
    workers: int  # processes training together


def split_cpu(n):
    """Splits the host CPU into `n` logical devices, for `MirroredStrategy` without GPUs.

    Must run before TensorFlow initialises its devices; calling it again with the
    same `n` afterwards is fine.

    Args:
        n: positive int.

    Returns:
        The logical CPU device names.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"the number of CPU devices must be a positive integer, got {n!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError:
        current = len(tf.config.get_logical_device_configuration(cpu) or [None])
        if current != n:
            raise UserError(
                f"cannot split the CPU into {n} devices: TensorFlow already started with "
                f"{current}; split it before creating any tensor or model"
            ) from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def read_tf_config(environ=None):
    """The parsed `TF_CONFIG` of a multi-worker run, checked.

    `TF_CONFIG` is JSON: `{"cluster": {"worker": ["host:port", ...]}, "task": {"type":
    "worker", "index": i}}`, the same cluster on every worker, each with its own task;
    an optional `"chief": ["host:port"]` job is the chief, else worker 0 is.

    Raises:
        UserError naming what is missing or malformed.
    """
    text = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not text.strip():
        raise UserError(
            "the multi-worker strategy needs the TF_CONFIG environment variable: "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}'
        )
    try:
        tf_config = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"TF_CONFIG is not valid JSON: {err}") from None
    if not isinstance(tf_config, dict):
        raise UserError(f"TF_CONFIG must be a JSON object, got {text!r}")
    cluster, task = tf_config.get("cluster"), tf_config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise UserError('TF_CONFIG has no "cluster" object mapping job names to address lists')
    for job, addresses in cluster.items():
        if job not in WORKER_JOBS:
            raise UserError(
                f"TF_CONFIG cluster job {job!r} is not one the multi-worker strategy trains "
                f"with; use {' and '.join(WORKER_JOBS)}"
            )
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and ":" in a for a in addresses)
        ):
            raise UserError(
                f'TF_CONFIG cluster "{job}" must be a non-empty list of "host:port" strings, '
                f"got {addresses!r}"
            )
    if len(cluster.get("chief", [])) > 1:
        raise UserError(f'TF_CONFIG cluster "chief" lists {len(cluster["chief"])} tasks; at most 1')
    if not isinstance(task, dict):
        raise UserError('TF_CONFIG has no "task" object ({"type": "worker", "index": i})')
    job, index = task.get("type"), task.get("index")
    if job not in cluster:
        raise UserError(
            f"TF_CONFIG task type {job!r} is not a job of the cluster ({', '.join(cluster)})"
        )
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[job]):
        raise UserError(
            f'TF_CONFIG task index {index!r} is not an index into cluster "{job}" '
            f"(0 to {len(cluster[job]) - 1})"
        )
    return tf_config


def is_chief(tf_config):
    """Whether the task of a (checked) `TF_CONFIG` is the chief: the "chief" task if the
    cluster has one, else worker 0."""
    cluster, task = tf_config["cluster"], tf_config["task"]
    if "chief" in cluster:
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


def make_strategy(name=None):
    """The strategy `training.strategy` names (see the module docstring).

    Args:
        name: None or "default", "mirrored" or "multi-worker".

    Returns:
        A `tf.distribute.Strategy`; build and compile the model in its `scope()`.
    """
    if name in (None, "default"):
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()  # every GPU, NCCL all-reduce
        # Without explicit devices MirroredStrategy would pick a single CPU device.
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if name == "multi-worker":
        read_tf_config()
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )  # NCCL between GPUs, ring all-reduce on CPUs
        try:
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        except (RuntimeError, ValueError) as err:
            raise UserError(f"cannot start the multi-worker strategy: {err}") from None
    raise UserError(f"unknown strategy {name!r}; use {', '.join(STRATEGIES)} or null (one device)")


def loopback_workers(n):
    """`n` "127.0.0.1:port" addresses on free ports: a `TF_CONFIG` cluster of worker
    processes on this machine, to try or test the multi-worker strategy without a cluster.

    The ports are free when this returns; another process could still take one before
    the workers bind it.
    """
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()


def current_task(strategy):
    """This process's `Task` under `strategy`."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return Task(type=None, index=0, chief=True, workers=1)
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    tf_config = {
        "cluster": cluster,
        "task": {"type": resolver.task_type, "index": resolver.task_id},
    }
    return Task(
        type=resolver.task_type,
        index=resolver.task_id,
        chief=is_chief(tf_config),
        workers=sum(len(cluster.get(job, [])) for job in WORKER_JOBS),
    )


def workarounds_checked(keras_version):
    """Whether `prepare_fit`'s workarounds were checked on Keras `keras_version`.

    Args:
        keras_version: a version string such as "3.15.1"; compared by major.minor with
            `WORKAROUND_KERAS`.
    """
    return ".".join(keras_version.split(".")[:2]) in WORKAROUND_KERAS


@functools.cache  # once per process and version
def warn_if_unchecked(keras_version):
    """Warns, once, that `prepare_fit`'s workarounds were not checked on `keras_version`."""
    if not workarounds_checked(keras_version):
        warnings.warn(
            f"seq2seq_attn works around {BUILD_PEEK_BUG} and {SCALAR_LOGS_BUG} through Keras "
            f"internals checked on Keras {', '.join(WORKAROUND_KERAS)}, not on {keras_version}; "
            "it applies them anyway. tests/test_distribute.py tells whether each is still "
            "needed and still works.",
            stacklevel=3,
        )


def prepare_fit(model, strategy):
    """Lets Keras 3 `fit` and `evaluate` run `model` under `strategy`; run them inside
    `strategy.scope()` afterwards.

    Applies `forget_creation_strategy` (keras-team/keras#20585) and, across workers,
    `use_first_replica_logs` (tensorflow/tensorflow#72388). Both reach into Keras
    internals, so they are guarded by the Keras versions they were checked on,
    `WORKAROUND_KERAS`. On any other Keras they still apply, after a warning (once per
    process), because that is the safe side for training: where a bug is fixed its
    workaround is harmless (the model is built already; the logs are equal on every
    replica), where it is not, skipping the workaround would make `fit` fail. The warning
    is for the remaining case, Keras internals that changed under a workaround.
    tests/test_distribute.py reproduces each bug without its workaround, checks that the
    workaround still fixes it, and fails, naming the workaround to remove, once the bug no
    longer reproduces.

    Args:
        model: a compiled Keras model whose variables (the optimizer's too) were created
            under `strategy.scope()`.
        strategy: a `tf.distribute.Strategy`.
    """
    warn_if_unchecked(keras.__version__)
    forget_creation_strategy(model)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        use_first_replica_logs(model, strategy)


def forget_creation_strategy(model):
    """Works around keras-team/keras#20585 (Keras 3.15): `fit` skips its build peek.

    Before training and before every evaluation Keras builds a model created under a
    strategy from a peeked batch that it averages over the replicas. That fails when the
    batch splits unevenly across replicas (a bucket's last batch), and across workers on
    any nested input; the peek also spends one reshuffle of the training data.
    `build_model` has built the model and optimizer already, so the model forgets the
    strategy it was created under (the private `_distribute_strategy`) and `fit` takes it
    from the scope it runs in, skipping the peek.
    """
    _compat.forget_distribute_strategy(model)  # already None for the default strategy


def use_first_replica_logs(model, strategy):
    """Works around tensorflow/tensorflow#72388 (Keras 3.15, TensorFlow 2.21): the train
    and test functions of `model` keep the first local replica's logs.

    Across workers Keras averages every step's logs with `strategy.reduce(MEAN, axis=0)`,
    which rejects scalars. The logs are metric results, already equal on every replica
    (metric variables are mirrored and summed on write), so nothing needs averaging.

    Args:
        model: a compiled Keras model.
        strategy: a `tf.distribute.MultiWorkerMirroredStrategy`.
    """
    model.train_function = _first_replica_logs(strategy, model.train_step)
    model.test_function = _first_replica_logs(strategy, model.test_step)


def _first_replica_logs(strategy, step):
    """A Keras train/test function: one `step` per call on a distributed iterator."""

    def first_replica(data):
        logs = strategy.run(step, args=(data,))
        return tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], logs)

    traced = []

    def function(iterator):
        data = iterator.get_next_as_optional()  # the workers agree on the end of the data
        if not data.has_value():
            raise StopIteration
        if not traced:  # one trace for all batch shapes (the spec leaves them unknown)
            traced.append(
                tf.function(first_replica, input_signature=[iterator.element_spec], autograph=False)
            )
        return traced[0](data.get_value())

    return function


def worker_scratch_dir(run_dir, task):
    """Where a non-chief worker writes what the chief writes into `run_dir`.

    Every worker must save checkpoints (saving reads variables collectively) but only
    the chief's files are kept. The path is fixed per run directory and task so that a
    restarted worker finds its own `BackupAndRestore` state again.
    """
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"seq2seq_attn-{digest}-{task.type}{task.index}"


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class CrossReplicaAdam(WarmUpAverage, keras.optimizers.Adam):
    """Adam whose gradient clipping sees the gradient of the global batch.

    Keras optimizers clip each replica's share of the gradient and only then sum the
    shares across replicas, so under a multi-replica strategy `clipnorm` bounds the
    wrong vectors and training no longer matches one device. This optimizer sums the
    shares first and clips the sum; then the first replica passes the clipped sum on and
    the others pass zeros, so the base class's own cross-replica sum reproduces it
    exactly, and its clipping has nothing left to clip. (Zeros rather than `sum / n` on
    every replica: summed embedding `IndexedSlices` keep one row per replica, and Adam
    would count the repeated rows separately in its squared-gradient average.) With one
    replica, or without clipping, it is plain Adam (with `use_ema`: `WarmUpAverage`'s).
    """

    def apply(self, grads, trainable_variables=None):
        context = tf.distribute.get_replica_context()
        clipping = self.clipnorm or self.global_clipnorm or self.clipvalue
        if clipping and context is not None and context.num_replicas_in_sync > 1:
            present = [i for i, g in enumerate(grads) if g is not None]
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads[i] for i in present])
            first = tf.equal(context.replica_id_in_sync_group, 0)
            grads = list(grads)
            for i, g in zip(present, _compat.clip_gradients(self, summed), strict=True):
                grads[i] = _times(g, tf.cast(first, g.dtype))
        return super().apply(grads, trainable_variables)


@keras.saving.register_keras_serializable(package="seq2seq_attn")
class CrossReplicaLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """The float16 loss-scale optimizer, skipping a step if any replica overflowed.

    Keras decides from the first replica's gradients alone (it assumes them already
    summed across replicas, which Keras 3 does only later, in the inner optimizer); an
    overflow on another replica would then reach the weights as inf/NaN. Here every
    replica learns whether any replica's gradients are non-finite.
    """

    def check_finite(self, grads):
        finite = super().check_finite(grads)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return finite
        overflowed = context.all_reduce(
            tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(finite), tf.float32)
        )
        return tf.equal(overflowed, 0.0)


def _times(gradient, factor):
    """`gradient * factor` for a dense or an `IndexedSlices` (embedding) gradient."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor
