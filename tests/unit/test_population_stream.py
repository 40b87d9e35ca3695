"""Streamed populations: a file evaluated batch by batch gives exactly the figures of the same rows in memory."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hms import population as P
from hms import protocol
from hms.errors import BadInput
from hms.population_stream import PopulationFile, decile_of, open_file
from hms.simulate import simulate
from tests.conftest import WILDFIRE


def _parquet(pop: P.Population, path, row_group: int = 700, **extra) -> None:
    cols = {**pop.columns, **{k: c.strings() for k, c in pop.attributes.items()}, "weight": pop.weight, **extra}
    pq.write_table(pa.table(cols), path, row_group_size=row_group)


def _same(a: dict, b: dict) -> None:
    """Every figure of two results' JSON equal, but where the population came from."""
    for k in ("population", "seconds"):
        a.pop(k), b.pop(k)
    assert a == b


@pytest.mark.parametrize("batch", [97, 1000, 1 << 20])
def test_a_streamed_parquet_file_gives_the_figures_of_the_same_rows_in_memory(tmp_path, batch):
    proto = protocol.load(WILDFIRE)
    pop = P.synthetic(P.SyntheticSpec(n=5000, seed=3, weight=3, fire_declared_share=0.4))
    _parquet(pop, tmp_path / "p.parquet")
    streamed = P.resolve(str(tmp_path / "p.parquet"))
    assert isinstance(streamed, PopulationFile)
    memory = simulate(proto, P.load_file(tmp_path / "p.parquet"), proto, detail=True).to_dict()
    stream = simulate(proto, streamed, proto, detail=True, chunk_rows=batch, batch_rows=3 * batch).to_dict()
    assert stream["population"]["streamed"] and stream["population"]["rows"] == 5000
    _same(memory, stream)


def test_a_lone_batch_halved_across_the_workers_gives_the_figures_of_one_piece(tmp_path, monkeypatch):
    """A file of one row group is one batch: its halves run side by side (simulate._in_order), merged in order."""
    import hms.simulate as S

    proto = protocol.load(WILDFIRE)
    pop = P.synthetic(P.SyntheticSpec(n=5000, seed=4, weight=2, fire_declared_share=0.4))
    _parquet(pop, tmp_path / "p.parquet", row_group=5000)
    halves: list[int] = []
    run = S._in_order

    def counting(batches, fn, pieces=S.CHUNK_ROWS):
        for batch, part in run(batches, fn, pieces):
            halves.append(batch.n)
            yield batch, part

    monkeypatch.setattr(S, "_in_order", counting)
    whole = simulate(proto, P.resolve(str(tmp_path / "p.parquet")), proto, detail=True, chunk_rows=5000).to_dict()
    assert halves == [5000]
    halves.clear()
    split = simulate(proto, P.resolve(str(tmp_path / "p.parquet")), proto, detail=True, chunk_rows=1000).to_dict()
    assert halves == [3000, 2000]  # whole pieces of 1000 each
    _same(whole, split)


def test_attributes_stored_as_narrow_dictionaries_give_the_figures_of_plain_strings(tmp_path):
    """Microdata files store categories as int8 dictionaries; they are read as int32 indices (no checked cast)."""
    proto = protocol.load(WILDFIRE)
    pop = P.synthetic(P.SyntheticSpec(n=4000, seed=9, fire_declared_share=0.4))
    _parquet(pop, tmp_path / "strings.parquet")
    narrow = {k: pa.DictionaryArray.from_arrays(c.codes.astype(np.int8), pa.array(c.labels))
              for k, c in pop.attributes.items()}
    pq.write_table(pa.table({**pop.columns, **narrow, "weight": pop.weight}), tmp_path / "narrow.parquet",
                   row_group_size=1500)
    strings = simulate(proto, P.resolve(str(tmp_path / "strings.parquet"))).to_dict()
    dictionaries = simulate(proto, P.resolve(str(tmp_path / "narrow.parquet"))).to_dict()
    assert dictionaries["fairness"]["attributes"] and dictionaries["groups"]
    _same(strings, dictionaries)


def test_a_streamed_csv_file_gives_the_figures_of_the_same_rows_in_memory(tmp_path):
    proto = protocol.load(WILDFIRE)
    pop = P.synthetic(P.SyntheticSpec(n=3000, seed=8))
    P.write_csv(pop, tmp_path / "p.csv")
    memory = simulate(proto, P.load_file(tmp_path / "p.csv"), detail=True).to_dict()
    stream = simulate(proto, P.resolve(str(tmp_path / "p.csv")), detail=True, chunk_rows=128).to_dict()
    _same(memory, stream)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 1.0, 2.5, 1e4, 1e4 + 1, 123456.0, -3.0, 7e8]), st.integers(0, 5)),
        min_size=1,
        max_size=300,
    ),
    st.integers(1, 64),
)
def test_streamed_decile_cut_points_are_exactly_those_of_a_sort(tmp_path_factory, rows, batch):
    income = np.array([r[0] for r in rows])
    weight = np.array([float(r[1]) for r in rows])
    path = tmp_path_factory.mktemp("d") / "p.parquet"
    pq.write_table(pa.table({"household_income": income, "weight": weight}), path, row_group_size=batch)
    memory = P.from_columns({"household_income": income, "weight": weight}).decile_edges()
    streamed = open_file(path).decile_edges("household_income")
    order = np.argsort(income, kind="stable")  # the definition, by a sort: the first value reaching k/10
    cw = np.cumsum(weight[order])
    by_sort = None if cw[-1] <= 0 else income[order][np.minimum(
        np.searchsorted(cw, cw[-1] * np.arange(1, 10) / 10, side="left"), len(income) - 1)]
    assert (memory is None) == (by_sort is None)
    if by_sort is not None:
        assert memory.tolist() == by_sort.tolist()
    if memory is None:
        assert streamed is None
    else:
        assert streamed is not None and streamed.tolist() == memory.tolist()


def test_a_bad_value_deep_in_a_file_is_refused_with_its_row_in_the_file(tmp_path):
    pop = P.synthetic(P.SyntheticSpec(n=2000, seed=1))
    size = pop.columns["household_size"].copy()
    size[1733] = 0  # below the declared minimum of 1
    _parquet(pop, tmp_path / "p.parquet", household_size=size)
    with pytest.raises(BadInput, match=r"column 'household_size'.*row 1733: 0(\.0)? is below the minimum 1"):
        simulate(protocol.load(WILDFIRE), P.resolve(str(tmp_path / "p.parquet")), chunk_rows=500)


def test_an_empty_cell_and_a_negative_weight_are_refused_with_their_rows(tmp_path):
    t = pa.table({"household_size": pa.array([1, 2, None, 4]), "household_income": [1.0, 2.0, 3.0, 4.0],
                  "county_fire_declared": [True] * 4})
    pq.write_table(t, tmp_path / "e.parquet", row_group_size=2)
    with pytest.raises(BadInput, match=r"column 'household_size': row 2 is empty"):
        simulate(protocol.load(WILDFIRE), P.resolve(str(tmp_path / "e.parquet")), chunk_rows=2)
    t = pa.table({"household_size": [1, 2, 3], "household_income": [1.0, 2.0, 3.0],
                  "county_fire_declared": [True] * 3, "weight": [1.0, 1.0, -2.0]})
    pq.write_table(t, tmp_path / "w.parquet")
    with pytest.raises(BadInput, match=r"row 2: weight -2.0 is negative"):
        simulate(protocol.load(WILDFIRE), P.resolve(str(tmp_path / "w.parquet")))


def test_a_file_missing_a_column_the_rules_read_is_refused_before_reading_a_row(tmp_path):
    pq.write_table(pa.table({"household_size": [1], "household_income": [2.0]}), tmp_path / "m.parquet")
    with pytest.raises(BadInput, match=r"missing column 'county_fire_declared'"):
        simulate(protocol.load(WILDFIRE), P.resolve(str(tmp_path / "m.parquet")))


def test_a_file_that_is_not_parquet_is_refused_naming_it(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(BadInput, match=r"not a readable Parquet file") as e:
        P.resolve(str(tmp_path / "x.parquet"))
    assert "x.parquet" in str(e.value)


def test_attribute_labels_that_differ_between_batches_land_in_one_set_of_groups(tmp_path):
    # the first batch has only group A, the second only B: batch-local codes are both 0
    t = pa.table({"household_size": [1] * 4, "household_income": [1000.0, 1000.0, 1000.0, 10.0**7],
                  "county_fire_declared": [True] * 4, "race_ethnicity": ["A", "A", "B", "B"]})
    pq.write_table(t, tmp_path / "g.parquet", row_group_size=2)
    r = simulate(protocol.load(WILDFIRE), P.resolve(str(tmp_path / "g.parquet")), chunk_rows=2)
    assert r.fairness["attributes"]["race_ethnicity"]["rates"] == {"A": 1.0, "B": 0.5}
    assert r.groups["race_ethnicity"] == {"A": {"households": 2.0, "selected": 2.0},
                                          "B": {"households": 2.0, "selected": 1.0}}


def test_a_read_failure_in_the_reader_thread_reaches_the_caller(tmp_path):
    pop = P.synthetic(P.SyntheticSpec(n=3000, seed=2))
    _parquet(pop, tmp_path / "p.parquet", row_group=500)
    f = P.resolve(str(tmp_path / "p.parquet"))
    (tmp_path / "p.parquet").write_bytes(b"truncated")  # the file changes under the reader
    with pytest.raises(BadInput, match="not a readable Parquet file"):
        list(f.chunks(["household_size"], 500))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=9, max_size=9), st.lists(
    st.floats(-2e9, 2e9, allow_nan=False), max_size=50))
def test_a_values_decile_is_the_number_of_cut_points_below_it(edges, values):
    e, v = np.sort(np.array(edges)), np.array(values, dtype=np.float64)
    assert decile_of(v, e).tolist() == np.searchsorted(e, v, side="left").tolist()
