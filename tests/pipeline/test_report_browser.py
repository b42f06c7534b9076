"""The HTML report in headless Chromium: every image loads, the tables render, the first screen is not blank.

Skips only when no Chromium is installed and UDCSHIELD_REQUIRE_CHROMIUM is unset; CI (.ci/run) installs
Chromium and sets the variable, so there the test can never skip.
"""

import json
import os
import re
import shutil
import subprocess

import imageio.v3 as iio
import numpy as np
import pytest

from tests.pipeline.report_layout import build_layout
from udcshield.pipeline import report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Appended to a copy of the report only: the report itself carries no script.
PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return i.alt; });
  var out = {images: imgs.length, broken: broken, tables: document.querySelectorAll("table").length,
             glance_rows: document.querySelectorAll("#glance tbody tr").length};
  var pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("UDCSHIELD_REQUIRE_CHROMIUM"):
        pytest.fail("UDCSHIELD_REQUIRE_CHROMIUM is set but no Chromium binary was found "
                    f"(looked for {', '.join(BROWSERS)}); install it: apt-get install -y chromium")
    pytest.skip("Chromium is not installed (apt-get install -y chromium) and UDCSHIELD_REQUIRE_CHROMIUM is unset")


def headless(exe: str, profile, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    exe = browser()
    root = tmp_path_factory.mktemp("browser")
    params, layout, _ = build_layout(root)
    report.run(params, layout)
    return exe, root, report.html_path(layout)


def test_every_image_loads_and_the_tables_render(rendered):
    exe, root, html = rendered
    probe = root / "probe.html"
    probe.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    proc = headless(exe, root / "profile-dom", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe-result">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"no probe result in the dumped DOM (rc {proc.returncode}): {proc.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["images"] == 7 and result["broken"] == []
    assert result["tables"] >= 8 and result["glance_rows"] == 2


def test_first_screen_screenshot_is_not_blank(rendered):
    exe, root, html = rendered
    shot = root / "screen.png"
    proc = headless(exe, root / "profile-shot", "--window-size=1400,900", f"--screenshot={shot}", html.as_uri())
    assert shot.is_file(), f"no screenshot (rc {proc.returncode}): {proc.stderr[-2000:]}"
    image = iio.imread(shot)
    assert image.shape[:2] == (900, 1400)
    rgb = image[..., :3].astype(np.float32)
    assert rgb.std() > 20  # header, tables and a chart, not an empty page
    assert len(np.unique(rgb.reshape(-1, 3)[::7], axis=0)) > 50  # many colours: figures were drawn
