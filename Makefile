# Thin wrappers around tasks.py, which needs only Python 3.11 and pip.
.PHONY: demo test test-fast lint web
demo:
	python3 tasks.py demo
test:
	python3 tasks.py test
test-fast:
	python3 tasks.py test --fast
lint:
	.venv/bin/ruff check seq2seq_attn export serving benchmarks tests data tools tasks.py
# The browser page of `export --web`: npm ci in web/, then esbuild and copies into
# export/web_assets (committed; see CONTRIBUTING.md, "The browser page").
web:
	cd web && npm ci --no-audit --no-fund && npm run build
