"""The benchmarks of seq2seq_attn, run from the repository root through one harness.

    python -m benchmarks --list                     # every benchmark, one line each
    python -m benchmarks NAME [--small] [options]   # run one; `--small` is a quick check
    python -m benchmarks headline [--write README.md]

See `benchmarks/harness.py` for what a benchmark module provides and what a result holds.
"""
