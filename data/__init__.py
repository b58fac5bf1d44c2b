"""The embedded English-Spanish Bible corpus (``bible-en-es.tsv.gz``), as package data.

The repository's ``data/`` folder is the package ``seq2seq_attn.corpus`` (pyproject.toml's
``package-dir``): an editable install maps it here, the wheel installs it as
``seq2seq_attn/corpus/``. :func:`seq2seq_attn.corpora.bible_path` finds the file through this
package, so the corpus has one place whichever way the package was installed. Provenance,
license and how to rebuild it: ``README.md`` beside this file (``tools/build_bible.py``).
"""
