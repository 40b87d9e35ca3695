"""The DAG file's view of protocol files: a full load's verdict cached by content, bounded by a time budget."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hms import protocol
from hms.protocol_heads import BrokenFile, ProtocolHead, read_heads
from tests.conftest import WILDFIRE


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    good = tmp_path / "p" / "wildfire.yml"
    good.parent.mkdir()
    shutil.copy(WILDFIRE, good)
    bad = tmp_path / "p" / "bad.yml"
    bad.write_text(WILDFIRE.read_text().replace("version: ", "version: -", 1))
    return [good, bad]


def test_a_full_load_gives_the_head_and_the_loaders_message_for_a_broken_file(tmp_path, files):
    good, bad = read_heads(files, tmp_path / "cache")
    p = protocol.load(files[0])
    assert isinstance(good, ProtocolHead) and good.checked
    assert (good.id, good.version, good.title, good.author) == (p.id, p.version, p.title, p.author)
    assert good.effective_at == str(p.data["metadata"]["effective_at"])
    assert isinstance(bad, BrokenFile) and "version" in bad.message and str(files[1]) in bad.message


def test_the_verdict_is_read_back_from_the_cache_without_loading_the_file_again(tmp_path, files, monkeypatch):
    first = read_heads(files, tmp_path / "cache")

    def no_load(path):
        raise AssertionError(f"{path} was loaded again")

    monkeypatch.setattr(protocol, "load", no_load)
    assert read_heads(files, tmp_path / "cache") == first


def test_an_edited_file_gets_a_new_verdict(tmp_path, files):
    read_heads(files, tmp_path / "cache")
    files[1].write_text(WILDFIRE.read_text())
    _, fixed = read_heads(files, tmp_path / "cache")
    assert isinstance(fixed, ProtocolHead) and fixed.checked


def test_past_the_budget_new_files_are_read_unchecked_and_checked_by_a_later_parse(tmp_path, files):
    good, bad = read_heads(files, tmp_path / "cache", budget=0)
    assert isinstance(good, ProtocolHead) and not good.checked and good.id == protocol.load(files[0]).id
    assert isinstance(bad, ProtocolHead) and not bad.checked  # its head reads; its build step will refuse it
    good, bad = read_heads(files, tmp_path / "cache")
    assert good.checked and isinstance(bad, BrokenFile)


def test_a_file_whose_head_cannot_be_read_is_broken_even_unchecked(tmp_path):
    junk = tmp_path / "junk.yml"
    junk.write_text("metadata: [1, 2\n")
    (head,) = read_heads([junk], tmp_path / "cache", budget=0)
    assert isinstance(head, BrokenFile) and "cannot read its metadata" in head.message


def test_a_cache_that_cannot_be_written_costs_only_speed(tmp_path, files):
    (tmp_path / "not-a-dir").write_text("")  # root may write anywhere: a file where the directory should be
    heads = read_heads(files, tmp_path / "not-a-dir" / "cache")
    assert isinstance(heads[0], ProtocolHead) and isinstance(heads[1], BrokenFile)
