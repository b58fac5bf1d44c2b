"""TensorFlow-free inference: exported graphs on onnxruntime or LiteRT, and the host-side search.

Below both `seq2seq_attn.export` (whose parity harness drives these runtimes) and
`seq2seq_attn.serving` (which serves them); imports nothing of TensorFlow. `bulk` and
`bulk_job` run the same decoding on Apache Beam (`translate-corpus`, the `beam` extra); nothing
else imports them, so the layer works without Beam.
"""
