"""MkDocs hook: renders the benchmark tables from benchmarks/results (placeholder)."""


def on_page_markdown(markdown, page, config, files):
    return markdown
