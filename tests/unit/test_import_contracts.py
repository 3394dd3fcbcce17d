"""The import graph keeps the contracts of ``[tool.importlinter]`` in pyproject.toml (docs/architecture.md §1):
layers, the adapters independent of each other, scoring/ and the pipeline steps alone, the flows without the
local host, no cycles. ``make lint`` runs the same check (``lint-imports``); this makes pytest fail too."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[2]


def test_every_import_contract_is_kept(monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


@pytest.mark.parametrize("contract", ["layers", "adapters", "scoring-alone", "no-devhost-in-flows", "acyclic"])
def test_the_contracts_the_architecture_names_exist(contract: str) -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert contract in {c["id"] for c in config["contracts"]}


def test_a_broken_contract_fails_the_check(monkeypatch, tmp_path, capsys) -> None:
    """The check above can fail: a contract the code breaks (the flows do use the ledger) is reported."""
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["shared"]\n\n[[tool.importlinter.contracts]]\n'
                      'name = "no ledger"\ntype = "forbidden"\nsource_modules = ["shared.flows"]\n'
                      'forbidden_modules = ["shared.ledger"]\n')
    monkeypatch.chdir(REPO)
    assert lint_imports(config_filename=str(config), no_cache=True, no_logo=True) == 1
    assert "shared.flows is not allowed to import shared.ledger" in capsys.readouterr().out
