"""scoring/model_names.py: one safe, stable model name per series, whatever its id values hold."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCORING = Path(__file__).resolve().parents[2] / "scoring"
import forecaster  # noqa: E402
import model_names  # noqa: E402
import routing_webservice as rw  # noqa: E402

# model_name_validation in azureml/_model_management/_util.py, which Model.register calls
AZURE_ML_RULE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-\._]{0,254}$")
UNUSUAL = ["minute maid", "café", "A&W", "A+W", '=HYPERLINK("x")', "x/../../../tmp/y", "..", ".", "a\\b", "nul\x00x",
           "z" * 300, "日本", "new\nline", " lead", "C:\\evil", "%2e%2e", "\udcff"]


def test_names_that_are_already_safe_stay_exactly_the_same() -> None:
    assert model_names.model_name("lr", {"Store": 1000, "Brand": "dominicks"}) == "lr_dominicks_1000"
    assert model_names.model_name("lr", {"Store": "1000", "Brand": "minute.maid"}) == "lr_minute.maid_1000"
    assert model_names.model_name("lr", {"sku": "apples", "shop": 7}) == "lr_7_apples"


@pytest.mark.parametrize("brand", UNUSUAL)
def test_every_unusual_id_gets_an_azure_ml_name_that_is_one_folder(brand: str) -> None:
    name = model_names.model_name("lr", {"Store": 1000, "Brand": brand})
    assert AZURE_ML_RULE.match(name) and "\n" not in name and len(name) <= 255
    assert model_names.is_valid(name) and Path(name).name == name and name not in (".", "..")
    plain = f"lr_{brand}_1000"
    assert name == plain if model_names.is_valid(plain) else re.fullmatch(r".*_[0-9a-f]{8}", name)  # lossy: hashed
    assert name == model_names.model_name("lr", {"Brand": brand, "Store": "1000"})  # raw values, any order


def test_hashed_names_are_readable_stable_and_keep_lookalikes_apart() -> None:
    assert model_names.model_name("lr", {"Store": 1000, "Brand": "minute maid"}).startswith("lr_minute-maid_1000_")
    assert model_names.model_name("lr", {"Brand": "café"}).startswith("lr_cafe_")
    assert model_names.model_name("lr", {"Brand": "A&W"}) != model_names.model_name("lr", {"Brand": "A+W"})
    # pinned: registered models keep their names across releases and Python processes
    code = "import model_names; print(model_names.model_name('lr', {'Store': 1000, 'Brand': 'minute maid'}))"
    other = subprocess.run([sys.executable, "-c", code], cwd=SCORING, capture_output=True, text=True, check=True)
    assert other.stdout.strip() == model_names.model_name("lr", {"Store": 1000, "Brand": "minute maid"})
    assert model_names.model_name("lr", {"Brand": "A&W"}) == "lr_A-W_" + _hash(["lr", "A&W"])


def _hash(values: list[str]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode()).hexdigest()[:8]


def test_long_ids_are_cut_to_255_characters_and_stay_distinct() -> None:
    a = model_names.model_name("lr", {"Brand": "z" * 300 + "a"})
    b = model_names.model_name("lr", {"Brand": "z" * 300 + "b"})
    assert len(a) == len(b) == 255 and a != b
    assert len(model_names.model_name("lr", {"Brand": "z" * 253})) == 255  # 256 plain: cut and hashed
    assert model_names.model_name("lr", {"Brand": "z" * 252}) == "lr_" + "z" * 252  # 255: still plain


@pytest.mark.parametrize("ids", [{"Brand": ""}, {"Brand": "   "}, {"Brand": None}, {}, {"Brand": {"a": 1}}])
def test_ids_that_cannot_name_a_model_say_which_value(ids: dict) -> None:
    with pytest.raises(model_names.InvalidModelName, match=r"Brand|at least one id"):
        model_names.model_name("lr", ids)
    with pytest.raises(forecaster.SeriesError):  # a per-series failure for the entry scripts
        forecaster.model_name("lr", ids)
    assert rw.model_name("lr", ids) is None  # the router answers that record 400, not the request 500


@pytest.mark.parametrize("brand", ["dominicks", *UNUSUAL])
def test_the_router_and_the_forecaster_name_models_alike(brand: str) -> None:
    for ids in ({"Store": 1000, "Brand": brand}, {"b": 1, "a": brand, "C": 2}):
        assert rw.model_name("lr", ids) == forecaster.model_name("lr", ids) == model_names.model_name("lr", ids)


def test_the_router_still_starts_without_pandas() -> None:
    code = "import sys, routing_webservice; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=SCORING, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
