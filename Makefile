# Thin wrappers around tasks.py, which needs only Python 3.11 and pip.
.PHONY: demo test lint
demo:
	python3 tasks.py demo
test:
	python3 tasks.py test
lint:
	.venv/bin/ruff check seq2seq_attn export serving benchmarks tests data tasks.py
