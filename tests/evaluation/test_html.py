"""HTML building blocks: escaping, embedded PNGs only, table shape checks, section ids."""

import base64

import numpy as np
import pytest

from udcshield.evaluation import html as H
from udcshield.evaluation.figures import png_bytes

PNG = png_bytes(np.full((4, 5, 3), 200, np.uint8))


def test_data_uri_round_trips_and_refuses_non_png():
    uri = H.data_uri(PNG)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == PNG
    with pytest.raises(ValueError, match="PNG"):
        H.data_uri(b"GIF89a...")


def test_text_is_escaped_everywhere():
    page = H.page("a <b>", ["x & y"], [H.Section("one", "<script>", H.paragraph('"q" <i>'))], footer="")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a &lt;b&gt;" in page and "x &amp; y" in page and "&quot;q&quot; &lt;i&gt;" in page
    fig = H.figure(PNG, 'alt "with" quotes', caption="<cap>")
    assert 'alt="alt &quot;with&quot; quotes"' in fig and "&lt;cap&gt;" in fig


def test_table_cells_formats_and_classes():
    t = H.table(["name", "psnr", "note"], [["m<1>", 21.456, None], ["m2", ("19.00", "bad"), 3]], caption="T")
    assert "<caption>T</caption>" in t
    assert '<td class="l">m&lt;1&gt;</td><td>21.46</td><td>-</td>' in t
    assert '<td class="bad">19.00</td>' in t and "<td>3</td>" in t
    with pytest.raises(ValueError, match="row 0 has 2 cells, header has 3"):
        H.table(["a", "b", "c"], [["x", 1]])


def test_sections_need_unique_plain_ids_and_every_image_alt_text():
    with pytest.raises(ValueError, match="lowercase"):
        H.Section("Bad Id", "t", "")
    with pytest.raises(ValueError, match="duplicate"):
        H.page("t", [], [H.Section("a", "A", ""), H.Section("a", "B", "")], "")
    with pytest.raises(ValueError, match="reserved"):
        H.page("t", [], [H.Section("provenance", "P", "")], "")
    with pytest.raises(ValueError, match="alt"):
        H.figure(PNG, "")


def test_page_links_every_section_and_the_footer():
    page = H.page("t", [], [H.Section("a", "A", "x"), H.Section("b-2", "B", "y")], footer="<p>f</p>")
    for anchor in ("#a", "#b-2", "#provenance"):
        assert f'href="{anchor}"' in page
    assert '<footer id="provenance"><p>f</p></footer>' in page and page.startswith("<!DOCTYPE html>")
