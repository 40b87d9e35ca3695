"""The HTML report: self-contained, escaped, and actually drawn when a browser opens it."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hms import bundle, population, protocol, report
from hms.cli import main
from hms.simulate import simulate
from tests.conftest import CHIP, ROOT, WILDFIRE

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def _hostile_protocol() -> protocol.Protocol:
    data = json.loads(json.dumps(protocol.load(WILDFIRE).data))
    data["metadata"]["title"] = HOSTILE
    return protocol.from_data(data)


def _result_with_baseline():
    new = json.loads(json.dumps(protocol.load(WILDFIRE).data))
    new["parameters"]["max_payment"] = 6000
    new["parameters"]["income_limit_pct"] = 3.5
    new["metadata"]["version"] = 4
    return simulate(protocol.from_data(new), baseline=protocol.load(WILDFIRE), detail=True)


def test_report_escapes_protocol_text():
    page = report.render(simulate(_hostile_protocol(), "synthetic:2000:1", detail=True))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img" in page  # Jinja2's autoescape


def test_report_is_self_contained():
    page = report.render(_result_with_baseline())
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert re.findall(r"(?:src|href)=", page) == []
    assert set(re.findall(r"https?://[^\"' )]+", page)) == {"http://www.w3.org/2000/svg"}  # a namespace, not a fetch


def test_report_has_every_chart_and_the_fairness_table():
    page = report.render(_result_with_baseline())
    for label in (
        "cost vs cap",
        "amount distribution",
        "eligibility by household size",
        "eligibility by income decile",
        "cost by income decile",
        "baseline winners and losers",
        "average change by decile",
        "selection rate by race_ethnicity",
        "selection rate by sex",
    ):
        assert f'aria-label="{label}"' in page, label
    assert page.count("<svg") == 9 and "cap $1,000,000,000" in page and "American Indian or Alaska Native" in page


def test_report_without_breakdowns_says_so_instead_of_drawing_empty_charts():
    page = report.render(simulate(protocol.load(WILDFIRE), "synthetic:1000:1"))
    assert "breakdown was not computed" in page and page.count("<svg") == 3  # cost vs cap + two fairness charts


def test_cli_writes_the_report(tmp_path, capsys):
    pkg = tmp_path / "w.tgz"
    bundle.write_atomic(pkg, bundle.build(protocol.load(WILDFIRE)))
    out = tmp_path / "sub" / "r.html"
    assert main(["policy", "simulate", str(pkg), "--report", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["report"] == str(out)
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'aria-label="eligibility by income decile"' in page


# ---- headless Chromium --------------------------------------------------------------------


def _png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA PNG with zlib and NumPy (no Pillow here): rows x (width * channels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    prev = np.zeros(width * bpp, dtype=np.int64)
    for y in range(height):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        if f == 0:
            cur = line
        elif f == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 255
        elif f == 2:  # Up
            cur = (line + prev) & 255
        else:  # Average / Paeth depend on the left neighbour: one pixel at a time
            cur = np.zeros_like(line)
            cl, pl = line.tolist(), prev.tolist()
            cv = [0] * len(cl)
            for i in range(len(cl)):
                a = cv[i - bpp] if i >= bpp else 0
                b = pl[i]
                if f == 3:
                    cv[i] = (cl[i] + (a + b) // 2) & 255
                else:
                    c = pl[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                    cv[i] = (cl[i] + pred) & 255
            cur = np.asarray(cv, dtype=np.int64)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian's chromium package)")
def test_report_renders_in_headless_chromium_with_its_charts(tmp_path):
    page = tmp_path / "report.html"
    report.write(_result_with_baseline(), page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / "simulation-report.png"
    png.unlink(missing_ok=True)
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        "--window-size=1200,1600",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.exists(), proc.stderr[-2000:]
    shutil.copy(page, ARTIFACTS / "simulation-report.html")
    px = _png_pixels(png.read_bytes())[:, :, :3]
    assert px.shape[:2] == (1600, 1200)
    colours = {tuple(c) for c in px.reshape(-1, 3)[::7].tolist()}
    assert len(colours) > 50, f"only {len(colours)} colours: a blank page?"
    # The chart colours are on screen: the green cost bar, the blue bars and the grey baseline bar.
    for rgb in ((0x16, 0xA3, 0x4A), (0x25, 0x63, 0xEB), (0x9C, 0xA3, 0xAF)):
        assert np.any(np.all(px == rgb, axis=-1)), rgb


def test_eligible_households_paid_nothing_are_named_eligible_and_unpaid_never_a_contradiction() -> None:
    """Issue 18: "285,370 households eligible" sat beside "No household is paid anything" on one report."""
    base = simulate(protocol.load(WILDFIRE), "synthetic:1000:1")
    unpaid = replace(base, eligible=285370.0, amounts={"households": 0})
    html_text = report.amounts_missing(unpaid)
    assert "285,370 households (weighted) meet the selection rule" in html_text
    assert "pays each of them 0" in html_text
    none = report.amounts_missing(replace(base, eligible=0.0, amounts={"households": 0}))
    assert "No household is eligible" in none
    missing = report.amounts_missing(replace(base, amounts=None))
    assert "not computed" in missing


def test_report_shows_the_populations_provenance_and_the_protected_inputs_the_protocol_reads():
    pop = population.resolve("chip-applicants")
    pop.provenance = {"publisher": "State statistics office", "year": 2024, "licence": "CC-BY-4.0",
                      "url": "https://example.org/acs"}
    r = simulate(protocol.load(CHIP), pop, detail=True)
    page = report.render(r)
    assert "Data: State statistics office, 2024, licence: CC-BY-4.0 — https://example.org/acs" in page
    assert 'aria-label="selection rate by age"' in page and "exempt: 42 U.S.C. 1397jj(c)(1)" in page
    assert "under 18" in page and "Shown, not gated" in page
    declared = r.fairness["declared"]["age"]
    assert declared["rates"]["under 18"] > declared["rates"]["18–24"]  # CHIP covers children: the law's line
    assert "age" not in r.fairness["attributes"]  # never gated by the four-fifths rule
