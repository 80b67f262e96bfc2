"""Reports from a store of synthetic run records: leaderboard order, ties, per-dataset and profile tables,
correlations, and the HTML page rendered by headless Chromium."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from leaderboard_testlib import fake_record

from benchmarks.report.document import Figure, Table, build_document
from benchmarks.report.model import build_report
from benchmarks.store import ResultStore
from feat2gs.cli import main as cli

SCENES = [("llff", "fern"), ("llff", "trex"), ("dtu", "scan37"), ("dtu", "scan40")]
# backbone -> offset: "a" clearly best, "b" and "b2" identical (a tie), controls below ("random-b": b's twin)
OFFSETS = {"a": 3.0, "b": 1.0, "b2": 1.0, "iuvrgb": 0.0, "random-b": -1.0}


def records():
    rng = np.random.default_rng(0)
    scene_effect = {s: rng.normal() * 2 for s in SCENES}
    seed_noise = {(s, k): rng.normal() * 0.05 for s in SCENES for k in (0, 1)}
    recs = []
    for mode, mshift in (("G", 0.0), ("T", 0.5)):
        for (ds, sc) in SCENES:
            for seed in (0, 1):
                noise = seed_noise[((ds, sc), seed)]
                for b, off in OFFSETS.items():
                    psnr = 20 + off + mshift + scene_effect[(ds, sc)] + noise
                    recs.append(fake_record(b, mode, sc, seed, psnr, dataset=ds, distance=1.0 / psnr))
    recs.append(fake_record("a", "G", "fern", 5, None, dataset="llff", status="failed"))  # never counted
    return recs


def test_report_content():
    rep = build_report(records(), n_boot=500)
    assert [s.mode for s in rep.modes] == ["G", "T"]
    g = rep.modes[0]
    assert [r.backbone for r in g.rows][:1] == ["a"] and g.rows[-1].backbone == "random-b"
    assert {r.backbone for r in g.rows if r.control} == {"iuvrgb", "random-b"}
    for r in g.rows:
        assert r.lo <= r.mean <= r.hi and r.n_scenes == 4 and r.n_runs == 8
    verdicts = {(c.a, c.b): c.verdict for c in g.comparisons}
    assert verdicts[("a", "iuvrgb")] == "better"
    assert verdicts.get(("b", "b2"), verdicts.get(("b2", "b"))) == "tie"
    assert g.stability.tau_mean > 0.9
    assert g.per_dataset["a"]["llff"][1] == 2 and set(g.datasets) == {"dtu", "llff"}
    assert rep.profile["a"]["T"].mean - rep.profile["a"]["G"].mean == pytest.approx(0.5, abs=1e-9)
    (c,) = [c for c in rep.correlations["G"] if (c.x, c.y) == ("psnr", "distance")]
    assert c.spearman == pytest.approx(-1.0) and c.n == 40  # distance = 1 / psnr: perfectly anti-monotone
    assert len(rep.compute) == 80  # the failed run is not in the report


def test_report_command_writes_markdown_latex_html(tmp_path):
    store = tmp_path / "r.sqlite"
    with ResultStore(store) as st:
        for r in records():
            st.put(r)
    assert cli(["report", "--store", str(store), "--out", str(tmp_path / "rep"), "--bootstrap", "300"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Geometry mode (G)" in md and "| 1 | a |" in md and "iuvrgb (control)" in md
    assert re.search(r"\| b \| .*tie", md) and "Kendall τ" in md and "Pearson" in md
    assert "Not counted: 1 failed run(s)" in md
    assert re.search(r"\| b \| [\d.]+ \| .* \| better \+2\.00 \|", md)  # b vs its random twin
    tex = (tmp_path / "rep" / "report.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.count("\\begin{tabular}") >= 8 and "\\end{document}" in tex
    assert "_" not in re.sub(r"\\_|\\includegraphics\[[^\]]*\]\{[^}]*\}", "", tex.split("\\begin{document}")[1])
    for png in ("leaderboard_G.png", "leaderboard_T.png", "profile.png", "scatter_G.png", "compute.png"):
        assert (tmp_path / "rep" / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "src=\"plots/" not in html  # self-contained


def test_empty_store_report(tmp_path):
    store = tmp_path / "e.sqlite"
    ResultStore(store).close()
    assert cli(["report", "--store", str(store), "--out", str(tmp_path / "rep")]) == 0
    assert "No complete runs" in (tmp_path / "rep" / "report.md").read_text()


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not found (make test installs Debian's `chromium` where apt-get is usable)")


def test_html_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    from benchmarks.report.writers import write_all

    blocks = build_document(build_report(records(), n_boot=300))
    html = write_all(blocks, tmp_path / "rep")[2]
    n_rows = sum(len(b.rows) for b in blocks if isinstance(b, Table))
    n_figs = sum(isinstance(b, Figure) for b in blocks)
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(base + ["--virtual-time-budget=10000", "--dump-dom", html.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stdout[:500]
    attrs = dict(re.findall(r'(data-[a-z-]+)="(\d+)"', body.group(1)))
    assert int(attrs["data-images-total"]) == n_figs >= 5
    assert int(attrs["data-images-loaded"]) == n_figs  # every inline PNG decoded
    assert int(attrs["data-table-rows"]) == n_rows
    assert dom.stdout.count("<tr>") >= n_rows
    shot = tmp_path / "report.png"
    r = subprocess.run(base + ["--window-size=1280,2400", f"--screenshot={shot}", html.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", r.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2400, 1280) and img.std() > 10  # not a blank page
