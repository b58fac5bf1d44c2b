"""tools/po_pairs.py: English-Spanish pairs from the gettext catalogs inside wheels."""

import importlib.util
import io
import zipfile
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import write_po

ROOT = Path(__file__).resolve().parent.parent


def po_pairs():
    spec = importlib.util.spec_from_file_location("po_pairs", ROOT / "tools" / "po_pairs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def catalog_bytes(messages, mo=False):
    catalog = Catalog(locale="es")
    for source, target, flags in messages:
        catalog.add(source, target, flags=flags)
    out = io.BytesIO()
    (write_mo if mo else write_po)(out, catalog)
    return out.getvalue()


def test_keeps_plain_translated_messages_once(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    messages = [
        ("Save  changes", "Guardar cambios", ()),
        ("Delete %(name)s", "Borrar %(name)s", ()),  # a placeholder
        ("Open <b>file</b>", "Abrir <b>archivo</b>", ()),  # markup
        ("Draft", "Borrador", ("fuzzy",)),  # not reviewed
        ("Cancel", "", ()),  # untranslated
    ]
    with zipfile.ZipFile(wheels / "app-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("app/locale/es/LC_MESSAGES/django.po", catalog_bytes(messages))
        # its compiled twin is not read again; another app ships only the .mo
        whl.writestr("app/locale/es/LC_MESSAGES/django.mo", catalog_bytes(messages, mo=True))
        whl.writestr("app/locale/fr/LC_MESSAGES/django.po", catalog_bytes([("Yes", "Oui", ())]))
        mo_only = [("Log in", "Iniciar sesión", ()), ("Save changes", "Guardar cambios", ())]
        whl.writestr("other/locale/es_ES/LC_MESSAGES/ui.mo", catalog_bytes(mo_only, mo=True))
    out = tmp_path / "pairs.tsv"
    po_pairs().main([str(wheels), "--out", str(out)])
    assert out.read_text(encoding="utf-8").splitlines() == [
        "Log in\tIniciar sesión",
        "Save changes\tGuardar cambios",
    ]


def test_leaves_logging_as_it_found_it(tmp_path):
    """A tool run inside a test process must not switch logging off for the tests after it."""
    import logging

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "app-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("app/locale/es/LC_MESSAGES/django.po", catalog_bytes([("Yes", "Sí", ())]))
    po_pairs().main([str(wheels), "--out", str(tmp_path / "pairs.tsv")])
    assert logging.root.manager.disable == logging.NOTSET


def test_a_folder_without_wheels_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as raised:
        po_pairs().main([str(tmp_path), "--out", str(tmp_path / "x.tsv")])
    assert raised.value.code == 2
