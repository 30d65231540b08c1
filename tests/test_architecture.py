"""The layering in pyproject.toml holds: a wrong-way import fails the suite, not just a review."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(tree: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on a tree, with that tree's trailstream first on the path."""
    return subprocess.run([sys.executable, "-c", LINT, "--config", "pyproject.toml", "--no-cache"], cwd=tree,
                          capture_output=True, text=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


def test_the_import_contracts_are_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _lint_with_planted_import(tmp_path, module: str, line: str) -> subprocess.CompletedProcess:
    """`lint-imports` on a copy of the package whose `module` (a path under trailstream/) ends with `line`."""
    import shutil

    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "trailstream", copy / "trailstream", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    planted = copy / "trailstream" / module
    planted.write_text(planted.read_text() + f"\n{line}  # planted\n")
    return _lint(copy)


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    """The contracts can fail: a copy of the package whose cache imports the app is refused."""
    result = _lint_with_planted_import(tmp_path, "cache/store.py", "from trailstream.app import state")
    assert result.returncode != 0
    assert "trailstream.cache.store -> trailstream.app.state" in result.stdout


def test_a_query_module_reaching_altair_breaks_the_no_charting_contract(tmp_path):
    """`alerts run` paid 0.3 s for altair through one import of the time bins from charts: that import is refused."""
    result = _lint_with_planted_import(tmp_path, "analytics/queries.py",
                                       "from trailstream.analytics.charts import TIME_BINS")
    assert result.returncode != 0
    assert "trailstream.analytics.queries is not allowed to import altair" in result.stdout


def test_a_command_loads_no_pandas_numpy_apprise_altair_or_boto3_before_it_needs_them():
    """Every `python -m trailstream` process paid for these at start (about 1 s of `alerts run`), none of them used;
    pandas stays importable for whatever needs it later (Streamlit)."""
    probe = ("import sys, trailstream.cli, trailstream.jobs; "
             "loaded = {'pandas', 'numpy', 'apprise', 'altair', 'boto3'} & set(sys.modules); "
             "import pandas, sqlite_utils; print(sorted(loaded), pandas.DataFrame({'a': [1]}).shape, "
             "sqlite_utils.Database(memory=True)['t'].insert({'a': 1}).count)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["[]", "(1,", "1)", "1"]


def test_a_post_sync_step_without_sigma_rules_or_due_reports_loads_neither_pysigma_nor_the_report_renderer(tmp_path):
    """pySigma takes a seventh of a second to load and the reports' query backends (sqlglot, jinja2) a tenth: a step
    with no rule files and no report due pays for neither."""
    probe = ("import sys; from trailstream import jobs; from trailstream.cache import store; "
             "store.open_cache('c.db').close(); print(jobs.after_sync('c.db', {}).lines()[0]); "
             "print(sorted({name.split('.')[0] for name in sys.modules} & {'sigma', 'sqlglot', 'jinja2'}))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.splitlines() == ["sigma: 0 rules over 0 new events, 0 new matches", "[]"]
