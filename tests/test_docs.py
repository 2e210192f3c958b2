"""The docs site builds with every warning an error and its internal links resolve (tutorials not executed here:
``bash scripts/build_docs.sh`` executes them and opens the site in a browser); its results pages render what the
results files hold."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import check_site  # noqa: E402
import results  # noqa: E402


def test_the_docs_build_without_warnings_and_every_internal_link_resolves(tmp_path):
    pytest.importorskip("myst_nb")
    built = subprocess.run([sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
                            "-D", "nb_execution_mode=off", "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"),
                            str(tmp_path / "html")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-5000:]
    assert check_site.broken_links(tmp_path / "html") == []
    api = (tmp_path / "html" / "api" / "srwm.html").read_text()
    assert 'id="acljax.srwm.srwm_scan"' in api and "(B, T, H, d)" in api  # a signature and its shapes


def test_the_link_check_finds_a_missing_page_and_a_missing_anchor(tmp_path):
    (tmp_path / "index.html").write_text('<a href="a.html#here">ok</a><a href="b.html">gone</a>'
                                         '<a href="a.html#nowhere">no anchor</a><a href="https://x.org/y">web</a>')
    (tmp_path / "a.html").write_text('<h1 id="here">A</h1><a href="index.html#">top</a>')
    assert check_site.broken_links(tmp_path) == ["index.html: b.html (no such file)",
                                                 "index.html: a.html#nowhere (no such anchor)"]


def test_a_benchmark_table_shows_what_varies_and_states_what_is_shared():
    rows = [{"impl": "scan", "T": 150, "step_s": 0.01234, "runs": [1, 2], "device": "cpu", "jax": "0.10.2"},
            {"impl": "reversible", "T": 2000, "step_s": 1.5, "runs": [3], "device": "cpu", "jax": "0.10.2"}]
    expected = ("| impl | T | step_s |\n|---|---|---|\n| scan | 150 | 0.0123 |\n| reversible | 2,000 | 1.5 |\n\n"
                "Recorded with: date `2026-12-03`; device `cpu`; jax `0.10.2`.")
    assert results.table(rows, {"date": "2026-12-03"}) == expected
    assert results.rows_of({"rows": rows, "date": "d"}) == (rows, {"date": "d"})
    assert results.rows_of(rows[0]) == ([rows[0]], {})


def test_the_readme_is_short_shows_the_two_commands_first_and_its_results_block_is_generated():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 200
    first_screen = "\n".join(lines[:40])
    assert "bash scripts/setup.sh && .venv/bin/acljax quickstart" in first_screen
    assert "bash scripts/setup.sh dev && .venv/bin/python -m pytest -q" in "\n".join(lines[:60])
    assert results.readme_with_block(text) == text  # the block is what the results files give


def test_every_recorded_result_is_on_a_results_page():
    recorded = {p for p in (ROOT / "experiments" / "results").rglob("*") if p.suffix in (".md", ".png")}
    shown = {p for name in results.experiment_names() for p in results.experiment_files(name)}
    assert recorded and recorded <= shown, sorted(str(p) for p in recorded - shown)


def test_the_results_pages_replace_only_their_own_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not a folder of results pages"):
        results.write_pages(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep"
    results.write_pages(tmp_path / "pages")
    results.write_pages(tmp_path / "pages")  # its own folder: replaced
    assert (tmp_path / "pages" / "index.md").exists() and (tmp_path / "pages" / "acl_quickstart.md").exists()
