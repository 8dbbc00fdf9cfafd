"""The README and the docstrings are made from the registry: check they stay in sync."""
from pathlib import Path

import pytest

import actfast
from actfast.catalogue import ENTRIES, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_function_table_is_the_registry_table():
    assert markdown_table() in README.read_text(), (
        "README.md's function table is out of date: paste actfast.catalogue.markdown_table()")


def test_readme_gives_the_test_command_that_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    command = 'pip install ".[test]" && pytest tests'
    assert command in README.read_text()
    assert command in ci


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_docstring_has_formula_parameters_and_derivative(entry):
    doc = getattr(actfast, entry.name).__doc__
    assert entry.formula in doc
    assert entry.derivative in doc
    for param in entry.params:
        assert param.name in doc
