"""Populations: a deterministic synthetic generator, the catalog, and files refused with the column named."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hms import bundle, protocol
from hms import population as P
from hms.cli import main
from hms.errors import BadInput
from hms.population_stream import PopulationFile
from tests.conftest import CHIP, WILDFIRE


def _columns(pop: P.Population) -> dict[str, np.ndarray]:
    return {**pop.columns, **{k: c.codes for k, c in pop.attributes.items()}, "weight": pop.weight}


def test_synthetic_n_seed_gives_identical_rows_every_time():
    a, b = P.resolve("synthetic:5000:42"), P.resolve("synthetic:5000:42")
    ca, cb = _columns(a), _columns(b)
    assert ca.keys() == cb.keys()
    for k in ca:
        assert np.array_equal(ca[k], cb[k]), k


def test_another_seed_gives_other_rows_and_the_seed_defaults_to_zero():
    a, b = P.resolve("synthetic:5000:1"), P.resolve("synthetic:5000:2")
    assert not np.array_equal(a.columns["household_income"], b.columns["household_income"])
    assert np.array_equal(P.resolve("synthetic:5000").columns["age"], P.resolve("synthetic:5000:0").columns["age"])


@pytest.mark.parametrize(
    ("source", "n", "seed"),
    [("synthetic:1M:7", 1_000_000, 7), ("synthetic:200_000", 200_000, 0), ("synthetic:5k", 5000, 0)],
)
def test_synthetic_sizes_accept_underscores_and_k_m_suffixes(source, n, seed):
    assert P.parse_synthetic(source) == (n, seed)


@pytest.mark.parametrize("source", ["synthetic:", "synthetic:abc", "synthetic:10:x", "synthetic:0"])
def test_bad_synthetic_sources_are_refused(source):
    with pytest.raises(BadInput):
        P.resolve(source)


def test_synthetic_distributions_are_plausible():
    pop = P.synthetic(P.SyntheticSpec(n=200_000, seed=3))
    size, income = pop.columns["household_size"], pop.columns["household_income"]
    assert size.min() == 1 and size.max() == 8
    assert 2.2 < size.mean() < 2.8  # US average household: about 2.5
    assert 60_000 < np.median(income) < 90_000 and income.min() >= 0
    assert income.mean() > np.median(income)  # log-normal: right-skewed
    assert 0.25 < pop.columns["county_fire_declared"].mean() < 0.36
    assert 0.85 < pop.columns["insured"].mean() < 0.97
    assert pop.columns["age"].min() >= 18
    assert np.all(pop.columns["children"] <= size - 1)
    assert set(pop.attributes) == {"race_ethnicity", "sex"}
    shares = np.bincount(pop.attributes["sex"].codes) / pop.n
    assert abs(shares[0] - 0.51) < 0.01


def test_child_applicants_have_child_ages_and_live_with_an_adult():
    pop = P.synthetic(P.SyntheticSpec(n=50_000, seed=1, applicant="child"))
    assert pop.columns["age"].min() == 0 and pop.columns["age"].max() == 20
    assert pop.columns["household_size"].min() == 2
    assert np.all(pop.columns["head_age"] >= 18)


@pytest.mark.parametrize("path", [WILDFIRE, CHIP], ids=["wildfire", "chip"])
def test_catalog_population_of_each_sample_has_every_input_its_rules_read(path):
    proto = protocol.load(path)
    pop = P.resolve(proto.budget["population"])
    cols, n = pop.columns_for(proto.ruleset)
    assert set(cols) == proto.ruleset.fields_read() and n == pop.n > 0
    assert pop.weight_integral and pop.total_weight == pop.n * pop.weight[0]


def test_unknown_catalog_name_suggests_the_closest():
    with pytest.raises(BadInput, match="did you mean 'wildfire-affected'"):
        P.resolve("wildfire-afected")


def test_catalog_overrides_are_checked_by_name(tmp_path, monkeypatch):
    cat = tmp_path / "catalog.yml"
    cat.write_text("populations:\n  x:\n    source: synthetic:10:1\n    overrides: {fire_declared_shar: 0.5}\n")
    monkeypatch.setenv("HMS_POPULATION_CATALOG", str(cat))
    with pytest.raises(
        BadInput, match="unknown synthetic override 'fire_declared_shar'; did you mean 'fire_declared_share'"
    ):
        P.resolve("x")


def test_catalog_entry_may_name_a_file_next_to_the_catalog(tmp_path, monkeypatch):
    P.write_csv(P.resolve("synthetic:300:5"), tmp_path / "people.csv")
    cat = tmp_path / "catalog.yml"
    cat.write_text("populations:\n  people:\n    source: people.csv\n    description: three hundred\n")
    monkeypatch.setenv("HMS_POPULATION_CATALOG", str(cat))
    pop = P.resolve("people")
    assert isinstance(pop, PopulationFile)  # a file is streamed, never loaded whole
    assert sum(ch.n for ch in pop.chunks(["household_size"], 64)) == 300
    assert pop.description == "three hundred" and "people.csv" in pop.source


def test_csv_round_trip_keeps_every_column(tmp_path):
    pop = P.resolve("synthetic:2000:9")
    P.write_csv(pop, tmp_path / "pop.csv")
    back = P.load_file(tmp_path / "pop.csv")
    for k, v in pop.columns.items():
        assert np.array_equal(back.columns[k], v), k
    for k, c in pop.attributes.items():
        assert np.array_equal(back.attributes[k].strings(), c.strings()), k
    assert np.array_equal(back.weight, pop.weight)


def test_csv_without_pyarrow_reads_the_same_columns(tmp_path, monkeypatch):
    pop = P.resolve("synthetic:500:9")
    P.write_csv(pop, tmp_path / "pop.csv")
    with_arrow = P.load_file(tmp_path / "pop.csv")
    monkeypatch.setattr(P, "_arrow_available", lambda: False)
    plain = P.load_file(tmp_path / "pop.csv")
    for k, v in with_arrow.columns.items():
        assert plain.columns[k].dtype.kind == v.dtype.kind and np.array_equal(plain.columns[k], v), k


def test_parquet_population_loads(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pop = P.resolve("synthetic:1000:4")
    cols = {**pop.columns, "race_ethnicity": pop.attributes["race_ethnicity"].strings(), "weight": pop.weight}
    pq.write_table(pa.table(cols), tmp_path / "pop.parquet")
    back = P.load_file(tmp_path / "pop.parquet")
    assert np.array_equal(back.columns["household_income"], pop.columns["household_income"])
    assert "sex" not in back.attributes and "race_ethnicity" in back.attributes
    streamed = P.resolve(str(tmp_path / "pop.parquet"))
    assert streamed.rows == 1000 and streamed.attribute_names == ("race_ethnicity",)


def test_file_without_weight_counts_each_row_once(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("household_size,household_income,county_fire_declared\n2,1000,true\n3,2000,false\n")
    pop = P.load_file(f)
    assert pop.total_weight == 2 and any("weight" in n for n in pop.notes)


# ---- bad files through the CLI: exit 2, file and column named --------------------------------


def _pack(tmp_path: Path) -> str:
    out = tmp_path / "w.tgz"
    bundle.write_atomic(out, bundle.build(protocol.load(WILDFIRE)))
    return str(out)


GOOD_HEADER = "household_size,household_income,county_fire_declared,weight"


@pytest.mark.parametrize(
    ("content", "column", "why"),
    [
        ("household_size,county_fire_declared,weight\n2,true,1\n", "household_income", "missing column"),
        (f"{GOOD_HEADER}\n2,lots,true,1\n", "household_income", "expected numbers"),
        (f"{GOOD_HEADER}\n2,1000,yes,1\n", "county_fire_declared", "expected booleans"),
        (f"{GOOD_HEADER}\n2.5,1000,true,1\n", "household_size", "not an integer"),
        (f"{GOOD_HEADER}\n2,1000,true,-3\n", "weight", "negative"),
        (f"{GOOD_HEADER}\n2,1000,true,1\n2,1000,true,inf\n", "weight", "not a finite number"),
        (f"{GOOD_HEADER}\n2,1000,true,heavy\n", "weight", "expected numbers"),
        (f"{GOOD_HEADER}\n2,1000,true,1\n2,,true,1\n", "household_income", "empty"),
        (f"{GOOD_HEADER}\n2,1000,,1\n", "county_fire_declared", "empty"),
    ],
    ids=[
        "missing",
        "text-number",
        "text-bool",
        "fraction-int",
        "neg-weight",
        "inf-weight",
        "text-weight",
        "empty",
        "empty-bool",
    ],
)
def test_bad_population_file_exits_2_naming_file_and_column(tmp_path, capsys, content, column, why):
    f = tmp_path / "pop.csv"
    f.write_text(content)
    rc = main(["policy", "simulate", _pack(tmp_path), "--population", str(f)])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(f) in err and repr(column) in err and why in err


def test_bad_population_file_in_json_mode_reports_the_column(tmp_path, capsys):
    import json

    f = tmp_path / "pop.csv"
    f.write_text(f"{GOOD_HEADER}\n2,1000,true,-1\n")
    rc = main(["policy", "simulate", _pack(tmp_path), "--population", str(f), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and out["ok"] is False and "'weight'" in out["where"] and "negative" in out["error"]


def test_missing_population_file_and_unknown_type_exit_2(tmp_path, capsys):
    pkg = _pack(tmp_path)
    assert main(["policy", "simulate", pkg, "--population", str(tmp_path / "nope.csv")]) == 2
    (tmp_path / "p.xlsx").write_text("x")
    assert main(["policy", "simulate", pkg, "--population", str(tmp_path / "p.xlsx")]) == 2
    assert "use .csv or .parquet" in capsys.readouterr().err


def test_total_weight_is_exact_for_fractional_weights():
    pop = P.from_columns({"household_size": [1, 2, 3], "weight": [0.1, 0.2, 0.3]})
    assert not pop.weight_integral and pop.total_weight == math.fsum([0.1, 0.2, 0.3])


def test_nan_weight_is_refused_naming_the_column_and_row():
    with pytest.raises(BadInput, match=r"row 1: weight nan is not a finite number") as e:
        P.from_columns({"household_size": [1, 2], "weight": [1.0, math.nan]}, source="f.parquet")
    assert e.value.where == "f.parquet: column 'weight'"


def test_a_catalog_entry_cites_its_provenance_or_is_refused_naming_the_field(tmp_path, monkeypatch):
    cat = tmp_path / "catalog.yml"
    monkeypatch.setenv("HMS_POPULATION_CATALOG", str(cat))
    cat.write_text("populations:\n  acs:\n    source: synthetic:10:1\n    provenance:\n      publisher: Census\n"
                   "      year: 2023\n      licence: public domain\n      url: https://www.census.gov/acs\n")
    assert P.resolve("acs").provenance == {"publisher": "Census", "year": 2023, "licence": "public domain",
                                          "url": "https://www.census.gov/acs"}
    cat.write_text("populations:\n  acs:\n    source: synthetic:10:1\n"
                   "    provenance: {publisher: Census, year: 2023}\n")
    with pytest.raises(BadInput, match="provenance needs 'licence'") as e:
        P.resolve("acs")
    assert "provenance" in e.value.where
    cat.write_text("populations:\n  acs:\n    source: synthetic:10:1\n"
                   "    provenance: {publisher: Census, year: '23', licence: x}\n")
    with pytest.raises(BadInput, match="provenance year must be a year"):
        P.resolve("acs")
