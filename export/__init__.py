"""Export a trained run to SavedModel, TFLite and ONNX, and prove every artifact computes what
the Keras model computes.

Split like Optimum's exporters: `signatures` (what is exported), `convert` (one plain function
per target format), `validate` (the parity harness), `main` (the `seq2seq-attn export` command).
"""
