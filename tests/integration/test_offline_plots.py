"""`dvc plots show` renders without internet: the repository's page (.dvc/plots_template.html,
advnets.plots_template) carries Vega, Vega-Lite and Vega-Embed inline. Rendered headless with
node (render_plots.js beside this file), as a browser would, every plot draws its data."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from advnets.plots_template import TEMPLATE, page
from conftest import REPO

pytestmark = pytest.mark.integration


def test_the_committed_page_is_what_the_installed_vl_convert_makes():
    assert (REPO / TEMPLATE).read_text() == page(), "regenerate it: python -m advnets.plots_template"


def test_dvc_plots_show_loads_nothing_from_the_internet_and_every_plot_draws_its_data(tmp_path):
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed: the offline plots cannot be rendered")
        pytest.skip("node is not installed: the offline plots cannot be rendered")
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "dvc.yaml", repo)
    shutil.copytree(REPO / "metrics", repo / "metrics")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=repo, env=env, check=True)
    shutil.copy(REPO / TEMPLATE, repo / TEMPLATE)
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")  # plots.html_template, as the repository sets it
    subprocess.run(["dvc", "plots", "show", "-o", "plots"], cwd=repo, env=env, check=True, capture_output=True)

    html = (repo / "plots" / "index.html").read_text()
    assert not re.findall(r"<script[^>]*\bsrc=", html) and "cdn.jsdelivr" not in html  # nothing fetched
    done = subprocess.run([node, str(REPO / "tests" / "integration" / "render_plots.js"), str(repo / "plots" / "index.html")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    plots = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    declared = [next(iter(plot)) for plot in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]]
    assert len(plots) >= len(declared) > 0
    for plot in plots:
        assert plot["rows"] and plot["data_marks"] > 0, plot  # its data, drawn
