"""The HTML report from a tiny real layout: sections, embedded PNGs only, no external reference, clear errors,
atomic writes; and the progress rows of the evaluate and adaptive stages that built the layout."""

import base64
import csv
import io
import re
import shutil
from html.parser import HTMLParser

import imageio.v3 as iio
import pytest

from tests.pipeline.report_layout import build_layout, report_params
from udcshield.config import ConfigError
from udcshield.pipeline import evaluate, report, report_html
from udcshield.pipeline.grid import grid_attack
from udcshield.pipeline.layout import Layout

SECTIONS = ("summary", "input-baseline", "robustness", "paired", "curves", "images", "adaptive", "transfer", "cost",
            "optics", "checks", "provenance")


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    params, layout, rows = build_layout(tmp_path_factory.mktemp("report"))
    out = report.run(params, layout)
    return params, layout, rows, out


def parsed(layout):
    p = Collector()
    p.feed(report.html_path(layout).read_text())
    return p


def test_every_section_and_table_is_there(built):
    _, layout, _, out = built
    text = report.html_path(layout).read_text()
    assert out["html"] == report.html_path(layout).as_posix()
    ids = {a.get("id") for _, a in parsed(layout).attrs}
    assert set(SECTIONS) <= ids
    assert {"glance", "adaptive-grid", "attack-cost", "robustness-resunet-tiny-psnr",
            "robustness-resunet-tiny-ssim", "paired"} <= ids
    for heading in ("At a glance", "PSNR and SSIM vs budget", "What the attack does to an image", "Provenance",
                    "Adaptive attacks through the purifier", "Display and PSF", "params sha256",
                    "Paired comparisons", "95 % percentile bootstrap interval"):
        assert heading in text
    assert "resunet_tiny/finetuned" in text and "purified + fine-tuned" in text
    glance = text.split('id="glance"')[1].split("</table>")[0]
    assert len(re.findall(r"<td>\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]</td>", glance)) == 2 * 2  # clean cells
    assert re.search(r"\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \(pgd 8/256\)", glance)
    assert layout.report.exists() and "# udcshield robustness report" in layout.report.read_text()


def test_every_image_is_an_embedded_png(built):
    _, layout, _, _ = built
    imgs = [a for tag, a in parsed(layout).attrs if tag == "img"]
    # worst-case bars, one curve figure per attack (2), one grid per restorer variant (2), mask, PSF
    assert len(imgs) == 7
    for a in imgs:
        assert a["alt"]
        prefix = "data:image/png;base64,"
        assert a["src"].startswith(prefix), a["src"][:40]
        png = base64.b64decode(a["src"][len(prefix):], validate=True)
        image = iio.imread(png, extension=".png")
        assert image.ndim == 3 and image.shape[0] > 10 and image.shape[1] > 10
        assert image.std() > 1.0  # not a blank picture


def test_nothing_points_outside_the_file(built):
    _, layout, _, _ = built
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", report.html_path(layout).read_text())
    assert not re.search(r"https?:|ftp:|file:|//[a-z]", text, re.I)
    tags = parsed(layout)
    assert not {"script", "link", "iframe", "object", "embed"} & set(tags.tags)
    for _, attrs in tags.attrs:
        assert attrs.get("href", "#").startswith("#")
        assert attrs.get("src", "data:image/png;base64,").startswith("data:image/png;base64,")
    assert "url(" not in text and "@import" not in text


def test_worst_case_csv_and_table_rows(built):
    params, layout, _, out = built
    rows = list(csv.DictReader(io.StringIO(report.worst_case_path(layout).read_text())))
    labels = [r["label"] for r in rows]
    assert "resunet_tiny/base undefended" in labels and "resunet_tiny/finetuned purified + fine-tuned" in labels
    assert any(r["defense"] == "adaptive, worst draw" for r in rows)
    assert all(float(r["psnr"]) > 0 for r in rows)
    table = out["table"]
    assert len(table) == 4 and table[0]["restorer"] == "resunet_tiny/base"
    assert set(table[0]) == {"restorer", "defense", "clean", "pgd 2/256", "pgd 8/256", "fgsm 8/256",
                              "cw_l2 unbounded"}
    assert re.fullmatch(r"\d+\.\d\d / \d\.\d{3}", table[0]["clean"])


def test_grid_uses_the_first_images_and_the_configured_attack(built):
    params, layout, _, _ = built
    text = report.html_path(layout).read_text()
    assert "ids img/000, img/001)" in text
    assert "pgd at 8/256 crafted on this restorer" in text


def test_stage_progress_rows_count_images(built):
    params, _, rows, _ = built
    ev = rows["evaluate"]
    n_cells = len(list(evaluate.cells(params)))
    assert len(ev) == n_cells and ev[-1]["done"] == ev[-1]["total"] == n_cells * 4
    assert all(r["rate"] >= 0 and "cell" in r for r in ev)
    craft = [r for r in rows["adaptive"] if r["phase"] == "craft"]
    draws = [r for r in rows["adaptive"] if r["phase"] == "draws"]
    assert craft[-1]["done"] == craft[-1]["total"] == 2 * 1 * 2  # 2 variants x 1 attack x 2 images
    # per variant: clean, non-adaptive pgd, bpda_eot at 8/256; 2 images x 2 draws each
    assert draws[-1]["done"] == draws[-1]["total"] == 2 * 3 * 2 * 2
    assert [r["done"] for r in draws] == sorted(r["done"] for r in draws)


def test_missing_inputs_are_named_and_nothing_is_written(tmp_path):
    layout = Layout(tmp_path / "data")
    with pytest.raises(FileNotFoundError) as err:
        report.run(report_params(), layout)
    msg = str(err.value)
    assert "records.csv (stage evaluate)" in msg and "purified.zarr (stage purify)" in msg
    assert "resunet_tiny (stage finetune)" in msg and "grid.zarr (stage evaluate)" in msg
    assert not (tmp_path / "data" / "report").exists()


def test_failed_rendering_keeps_the_previous_report(built, monkeypatch):
    params, layout, _, _ = built
    before = (report.html_path(layout).read_bytes(), layout.report.read_bytes(),
              report.json_path(layout).read_bytes())

    def broken(*args, **kwargs):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(report_html, "optics_section", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        report.run(params, layout)
    assert (report.html_path(layout).read_bytes(), layout.report.read_bytes(),
            report.json_path(layout).read_bytes()) == before
    assert not [p.name for p in layout.report.parent.iterdir() if p.name.startswith(".")]


def test_corrupt_records_are_refused(built, tmp_path):
    params, layout, _, _ = built
    copy = Layout(tmp_path / "data")
    shutil.copytree(layout.root, copy.root)
    before = report.html_path(copy).read_bytes()
    copy.records.write_text("image_id,model\nx,y\n")
    with pytest.raises(ValueError, match="records"):
        report.run(params, copy)
    assert report.html_path(copy).read_bytes() == before


def test_report_params_are_checked_when_loaded():
    with pytest.raises(ConfigError, match="report.grid_attack 'square' is not one of attack.attacks"):
        report_params(report={"grid_attack": "square"})
    with pytest.raises(ConfigError, match="report.grid_images"):
        report_params(report={"grid_images": 0})
    assert grid_attack(report_params(report={"grid_attack": "fgsm"})).name == "fgsm"
    assert grid_attack(report_params()).name == "pgd"
