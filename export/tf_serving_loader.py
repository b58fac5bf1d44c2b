"""A SavedModel loaded the way TF Serving loads it, for the parity harness to run.

TF Serving, `saved_model_cli run`, TensorFlow's C API and every binding built on it (Java,
Go, Rust) do not use `tf.saved_model.load`: they import the SavedModel's graph into a
session, restore the weights by running the saver the file names, run its init op, then
run each signature as named tensors in, named tensors out. A SavedModel can pass under
`tf.saved_model.load` and still fail there: one that tracks Keras 3 variables rather than
the `tf.Variable`s they hold restores nothing that way, and every signature then fails with
"Could not find variable" (keras-team/keras#19274, tensorflow/serving#2250).
`SessionSignatures` is that path, run by TensorFlow's own TF1 loader.

Example:

    >>> signatures = SessionSignatures("runs/export/saved_model")  # doctest: +SKIP
    >>> signatures["greedy"](source_ids=[[5, 6, 7, 3]])["tokens"]  # doctest: +SKIP
    array([[261, 263, 269, 535, 3]], dtype=int32)
    >>> signatures.close()  # doctest: +SKIP
"""

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops `serving_default` runs)

SERVE_TAG = "serve"


class SessionSignatures:
    """The signatures of a SavedModel restored into a TF1 session of its own graph.

    Args:
        path: the SavedModel directory.

    `signatures[name](**inputs)` feeds each named input (anything `np.asarray` takes) and
    returns every output of that signature as a NumPy array, by output name.
    """

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, [SERVE_TAG], str(path))
        self.signature_defs = {
            name: signature
            for name, signature in meta_graph.signature_def.items()
            if not name.startswith("__")  # `__saved_model_init_op`
        }

    def __getitem__(self, name):
        signature = self.signature_defs[name]

        def run(**inputs):
            unknown = set(inputs) - set(signature.inputs)
            if unknown:
                raise KeyError(f"{name}: no inputs {sorted(unknown)}")
            feed = {signature.inputs[k].name: np.asarray(v) for k, v in inputs.items()}
            names = sorted(signature.outputs)
            fetches = [signature.outputs[k].name for k in names]
            return dict(zip(names, self.session.run(fetches, feed), strict=True))

        return run

    def __iter__(self):
        return iter(self.signature_defs)

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
