"""`report.html`: self-contained, every section present, and it renders in
a real headless browser without console errors."""

import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from experiments import config as config_lib
from experiments import report

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Flags of a browser run in CI: no sandbox (containers), no network traffic
# of its own, nothing persisted.
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _figure(path, seed):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.imshow(np.random.default_rng(seed).random((6, 6)))
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture
def run_dir(tmp_path):
    """A finished run's files, written as the runner writes them."""
    run = tmp_path / "digits"
    (run / "plots").mkdir(parents=True)
    config = config_lib.to_dict(config_lib.get_experiment("digits"))
    (run / "config.json").write_text(json.dumps(config))
    metrics = {
        "test_accuracy": 0.9917,
        "test_loss": 0.031,
        "bleu_greedy": 2.59,
        "bleu_beam": 2.16,
        "experiment": "digits",
        "model": "cbam_resnet20",
        "data": {"dataset": "digits/1.0.0", "num_test_examples": 360},
        "classification_report": {"0": {"precision": 1.0}},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    with open(run / "history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "loss", "val_loss"])
        writer.writerows([[1, 2.3, 2.2], [2, 1.1, 1.3]])
    (run / "confusion_matrix.json").write_text(
        json.dumps({"labels": ["cat", "dog"], "matrix": [[5, 1], [0, 6]]})
    )
    (run / "samples.json").write_text(
        json.dumps([{"source": "Wo ist <b>er</b>?", "greedy": "where"}])
    )
    _figure(run / "plots" / "training_curves.png", 0)
    _figure(run / "plots" / "attention_maps.png", 1)
    return run


def test_run_report_holds_every_section_and_nothing_external(run_dir):
    path = report.write_run_report(str(run_dir), "Test accuracy 99.17%")
    page = open(path, encoding="utf-8").read()
    for heading in (
        "Configuration",
        "Metrics",
        "Scores by search",
        "Training curves",
        "Confusion matrix",
        "Figures",
        "Sample predictions",
    ):
        assert f"<h2>{heading}</h2>" in page, heading
    assert "Test accuracy 99.17%" in page
    # Both figures inlined; nothing loaded from elsewhere.
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 2
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:|//)', page)
    # Labels of the confusion matrix, test metrics, escaped sample text.
    assert "<th>cat</th>" in page and "<th>dog</th>" in page
    assert "0.9917" in page and "cbam_resnet20" in page
    assert "Wo ist &lt;b&gt;er&lt;/b&gt;?" in page


def test_markdown_tables_become_html_tables():
    page = report.markdown_to_html(
        "Ablation of `digits` (3 epochs).\n\n"
        "| model | accuracy |\n|---|---:|\n| **resnet20** | 0.99 |\n"
    )
    assert "<p>Ablation of <code>digits</code> (3 epochs).</p>" in page
    assert "<th>model</th><th>accuracy</th>" in page.replace("\n", "")
    assert "<td><b>resnet20</b></td><td>0.99</td>" in page


def test_summary_report_links_each_run(run_dir, tmp_path):
    report.write_run_report(str(run_dir))
    path = report.write_summary_report(
        str(tmp_path),
        "Comparison",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        [str(run_dir)],
    )
    page = open(path, encoding="utf-8").read()
    assert '<a href="digits/report.html">digits</a>' in page
    assert page.count("data:image/png;base64,") == 1  # its curves


def _browser():
    for name in BROWSERS:
        if shutil.which(name):
            return shutil.which(name)
    return None


# Records console errors and failed resource loads in the page itself, so
# that `--dump-dom` reports them (headless Chromium prints no console).
_ERROR_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || ("failed to load " +
      (e.target && (e.target.src || e.target.href))));
}, true);
var original = console.error;
console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " "));
  original.apply(console, arguments);
};
window.addEventListener("load", function () {
  var images = document.images, blank = 0;
  for (var i = 0; i < images.length; i++) {
    if (!images[i].complete || images[i].naturalWidth === 0) blank++;
  }
  if (blank) window.__errors.push(blank + " image(s) did not decode");
  document.body.setAttribute("data-errors", JSON.stringify(window.__errors));
  document.body.setAttribute("data-images", String(images.length));
});
</script>"""


@pytest.mark.skipif(_browser() is None, reason="no Chromium installed")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    from PIL import Image

    page = open(report.write_run_report(str(run_dir)), encoding="utf-8").read()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + _ERROR_PROBE, 1))
    profile = tmp_path / "profile"

    def browse(*args):
        return subprocess.run(
            [
                _browser(),
                *BROWSER_FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                *args,
                probed.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    dom = browse("--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    errors = re.search(r'data-errors="([^"]*)"', dom.stdout)
    assert errors, "the page did not finish loading: " + dom.stdout[:500]
    assert json.loads(errors.group(1).replace("&quot;", '"')) == []
    assert 'data-images="2"' in dom.stdout

    shot = tmp_path / "shot.png"
    done = browse(f"--screenshot={shot}", "--window-size=1200,1600")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    # Not blank: text, tables and figures give many distinct grey levels.
    assert pixels.std() > 10 and len(np.unique(pixels)) > 20
