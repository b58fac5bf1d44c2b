# Thin wrappers around tasks.py, which needs only Python 3.11 and pip.
.PHONY: demo test test-fast lint
demo:
	python3 tasks.py demo
test:
	python3 tasks.py test
test-fast:
	python3 tasks.py test --fast
lint:
	.venv/bin/ruff check seq2seq_attn export serving benchmarks tests data tools tasks.py
