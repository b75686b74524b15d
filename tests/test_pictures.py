"""Pictures and PDF pages from the sources: kept at ingest, attached to their chunks, shown on slides."""

import json
from pathlib import Path

import pytest
from PIL import Image

from ragreel.kb.chunking import chunk_document
from ragreel.kb.loaders import load_document
from ragreel.settings import Settings

MARKER = (255, 214, 102)


def _figure(path: Path, size=(400, 300), color=(40, 120, 200)) -> Path:
    image = Image.new("RGB", size, (255, 255, 255))
    image.paste(color, (40, 40, size[0] - 40, size[1] - 40))
    image.save(path)
    return path


def _pdf_with_figure(path: Path, figure: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Rail Handbook")
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "The first page has no figure. Trains leave on time.", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    pdf.multi_cell(
        0,
        8,
        "The line has 12 stations from Nangang to Zuoying. Trains run at up to 300 kilometres per hour, "
        "and the fastest ones travel from Taipei to Zuoying in under two hours.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.image(str(figure), w=120)
    pdf.image(str(_figure(figure.with_name("icon.png"), (40, 40))), w=10)  # an icon, not a figure
    pdf.output(str(path))
    return path


def test_markdown_pictures_are_found_beside_the_document_and_placed_in_the_text(tmp_path):
    _figure(tmp_path / "chart.png")
    md = tmp_path / "guide.md"
    md.write_text(
        "# Guide\n\nFirst paragraph.\n\n![A chart of temperatures](chart.png)\n\nSecond paragraph.\n\n"
        "![remote](https://example.com/x.png) ![missing](nowhere.png) ![inline](data:image/png;base64,AAAA)\n"
    )
    (section,) = load_document(md).sections
    assert [(p.caption, p.path) for p in section.pictures] == [
        ("A chart of temperatures", tmp_path / "chart.png")
    ]
    # It stands after the first paragraph, before the second; alone in its paragraph, its alt text
    # is its caption, not text of the document.
    assert section.text[: section.pictures[0].offset].endswith("First paragraph.")
    assert "A chart" not in section.text


def test_html_pictures_take_their_figure_caption(tmp_path):
    _figure(tmp_path / "map.png")
    html = tmp_path / "page.html"
    html.write_text(
        "<html><head><title>Map</title></head><body><p>Where the stations are.</p>"
        "<figure><img src='map.png' alt='alt text'><figcaption>The route map</figcaption></figure>"
        "<p>More text.</p></body></html>"
    )
    (section,) = load_document(html).sections
    assert [(p.caption, p.path.name) for p in section.pictures] == [("The route map", "map.png")]


def test_pdf_sections_know_their_page_and_its_embedded_figures(tmp_path):
    pdf = _pdf_with_figure(tmp_path / "rail.pdf", _figure(tmp_path / "figure.png"))
    first, second = load_document(pdf).sections
    assert (first.page, second.page) == (1, 2)
    assert "\n" not in second.text  # the paragraph's wrapped lines are one text again, sentences whole
    assert first.pictures == []
    (picture,) = second.pictures  # the 40 px icon is left out
    assert picture.offset is None and Image.open(__import__("io").BytesIO(picture.data)).size == (400, 300)


def test_a_picture_goes_to_the_chunk_before_it_and_a_pdf_pages_to_all_of_its_chunks(tmp_path):
    _figure(tmp_path / "chart.png")
    md = tmp_path / "long.md"
    sentences = " ".join(f"Sentence number {n} says something about tea." for n in range(40))
    md.write_text(f"# Long\n\n{sentences}\n\n![The chart](chart.png)\n\n{sentences}\n")
    chunks = chunk_document(load_document(md), Settings(chunk_chars_en=400))
    holders = [c for c in chunks if c.pictures]
    assert len(chunks) > 4 and len(holders) == 1
    assert "The chart" in holders[0].text or holders[0].text.endswith("about tea.")
    assert chunks.index(holders[0]) < len(chunks) - 1  # not the second half's chunks

    pdf = _pdf_with_figure(tmp_path / "rail.pdf", tmp_path / "chart.png")
    page_chunks = chunk_document(load_document(pdf), Settings(chunk_chars_en=60))
    on_two = [c for c in page_chunks if c.page == 2]
    assert len(on_two) > 1 and all(len(c.pictures) == 1 for c in on_two)
    assert all(not c.pictures for c in page_chunks if c.page == 1)


@pytest.mark.usefixtures("prefect_harness")
def test_ingest_keeps_pictures_and_pdfs_in_the_knowledge_base_and_forgets_them_with_their_document(
    ragreel_home, tmp_path
):
    from flows.ingest import ingest_knowledge_base
    from tasks.retrieve import retrieve_passages

    kb = tmp_path / "docs"
    kb.mkdir()
    _figure(kb / "chart.png")
    _figure(tmp_path / "outside.png", color=(200, 0, 0))
    (kb / "tea.md").write_text(
        "# Tea\n\nOolong brews at 90 degrees.\n\n![Brewing chart](chart.png)\n\n![secret](../outside.png)\n"
    )
    _pdf_with_figure(kb / "rail.pdf", _figure(tmp_path / "figure.png", color=(0, 160, 80)))
    ingest_knowledge_base([str(kb)])

    kb_dir = Path(Settings().kb_dir)
    tea = retrieve_passages("At what temperature does oolong brew?", top_k=1)[0]
    assert tea.source == "tea.md" and tea.page == 0 and tea.pdf == ""
    assert [p.caption for p in tea.pictures] == ["Brewing chart"]  # the file outside the folder is not kept
    assert Image.open(kb_dir / tea.pictures[0].file).size == (400, 300)

    rail = retrieve_passages("How many stations does the line have?", top_k=1)[0]
    assert rail.source == "rail.pdf" and rail.page == 2
    assert (kb_dir / rail.pdf).read_bytes() == (kb / "rail.pdf").read_bytes()
    assert len(rail.pictures) == 1 and (kb_dir / rail.pictures[0].file).is_file()

    (kb / "rail.pdf").unlink()
    ingest_knowledge_base([str(kb)])
    assert not (kb_dir / rail.pdf).exists() and not (kb_dir / rail.pictures[0].file).exists()
    assert (kb_dir / tea.pictures[0].file).is_file()

    # A knowledge base written before pages and pictures is refused with what to do, and rebuilt.
    from ragreel.errors import KnowledgeBaseError
    from ragreel.kb.store import KnowledgeBase

    store = KnowledgeBase(Settings())
    meta = json.loads(store.meta_path.read_text())
    store.meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "table"}))
    with pytest.raises(KnowledgeBaseError, match="older ragreel") as refused:
        retrieve_passages("tea", top_k=1)
    assert "--rebuild" in refused.value.hint
    assert ingest_knowledge_base([str(kb)]).rebuilt
    assert retrieve_passages("At what temperature does oolong brew?", top_k=1)[0].pictures == tea.pictures


def test_the_pdf_page_region_shows_the_quote_marked_and_nothing_when_it_is_not_there(tmp_path):
    from ragreel.video.pdf_page import quote_on_page, quote_region

    pdf = _pdf_with_figure(tmp_path / "rail.pdf", _figure(tmp_path / "figure.png"))
    # Line breaks in the PDF's text stream fall where the quote has spaces.
    quote = "Trains run at up to 300 kilometres per hour, and the fastest ones travel from Taipei to Zuoying"
    assert quote_on_page(pdf, 2, quote)
    assert not quote_on_page(pdf, 1, quote) and not quote_on_page(pdf, 3, quote)
    assert not quote_on_page(tmp_path / "gone.pdf", 2, quote)

    region = quote_region(pdf, 2, quote, (600, 300), MARKER)
    assert region is not None and region.size[0] <= 600 and region.size[1] <= 300
    assert max(region.size[0] / 600, region.size[1] / 300) > 0.98  # fills the box one way
    pixels = list(region.getdata())
    marked = sum(1 for p in pixels if p == MARKER)
    ink = sum(1 for p in pixels if max(p) < 80)
    assert marked > 2000 and ink > 500  # a highlighter over the quote's lines, the text still dark
    # Only the quote is marked: the marked band is a small part of the region.
    assert marked < 0.6 * len(pixels)
    assert quote_region(pdf, 2, "a sentence the page does not have", (600, 300), MARKER) is None


# --- on the slide -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def typesetter():
    from ragreel.settings import get_settings
    from ragreel.video.fonts import find_font
    from ragreel.video.layout import Typesetter

    return Typesetter(find_font(get_settings()))


def _slide(tmp_path: Path, **update):
    from ragreel.schemas import Slide

    fields = dict(
        key_point="Twelve stations",
        narration="The line has 12 stations.",
        quote="The line has 12 stations from Nangang to Zuoying.",
        quote_title="Rail Handbook",
        picture=str(_figure(tmp_path / "figure.png")),
        picture_caption="The route",
    )
    return Slide(**{**fields, **update})


def _inside(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def _apart(first, second) -> bool:
    return first[2] <= second[0] or second[2] <= first[0] or first[3] <= second[1] or second[3] <= first[1]


@pytest.mark.parametrize("aspect", ["landscape", "portrait", "square"])
def test_a_picture_sits_beside_the_quote_in_a_wide_frame_and_above_it_in_a_tall_one(
    typesetter, tmp_path, aspect
):
    from ragreel.video.layout import geometry_for, layout_slide

    geometry = geometry_for(aspect)
    card = layout_slide(_slide(tmp_path), ["The line has 12 stations."], typesetter, geometry, "en", (1, 2))
    (picture,) = [m for m in card.media if m.kind == "picture"]
    quote_panel = next(p for p in card.panels if p != picture.panel)
    assert _inside(picture.box, picture.panel) and _inside(picture.panel, geometry.safe_box)
    assert _apart(picture.panel, quote_panel)
    for line in card.lines:  # nothing printed over the picture; its caption below it
        assert _apart((line.x, line.y, line.x + line.width, line.y + line.height), picture.box)
    assert "The route" in card.texts("source_file")
    subtitle_top = min(line.y for line in card.lines if line.role == "subtitle")
    assert picture.panel[3] < subtitle_top
    if aspect != "portrait":  # a square frame's room between headline and subtitles is wide too
        assert picture.panel[0] > quote_panel[2]  # beside
    else:
        assert picture.panel[3] < quote_panel[1]  # above


def test_a_pdf_quote_is_shown_as_its_page_alone_in_a_wide_frame_with_the_picture_in_a_tall_one(
    typesetter, tmp_path
):
    from ragreel.video.layout import geometry_for, layout_slide

    slide = _slide(tmp_path, page_pdf=str(tmp_path / "rail.pdf"), page=2)
    wide = layout_slide(slide, ["The line has 12 stations."], typesetter, geometry_for("landscape"), "en")
    assert [m.kind for m in wide.media] == ["page"] and not wide.texts("quote")
    assert wide.media[0].lines[0].text == "Rail Handbook · page 2"
    tall = layout_slide(slide, ["The line has 12 stations."], typesetter, geometry_for("portrait"), "zh")
    assert [m.kind for m in tall.media] == ["page", "picture"]
    assert tall.media[0].lines[0].text == "Rail Handbook · 第 2 頁"


def test_slides_show_the_quote_that_holds_the_scenes_fact_with_its_page_and_picture(tmp_path, monkeypatch):
    from ragreel.schemas import Answer, Citation, Evidence, Picture, Scene
    from tasks.render import slides_for

    monkeypatch.setenv("RAGREEL_HOME", str(tmp_path / "home"))
    kb_dir = Path(Settings().kb_dir)
    (kb_dir / "documents").mkdir(parents=True)
    _pdf_with_figure(kb_dir / "documents" / "rail.pdf", _figure(tmp_path / "figure.png"))
    text = "The line has 12 stations from Nangang to Zuoying. Trains run at up to 300 kilometres per hour."
    cited = Citation(number=1, source="rail.pdf", title="Rail", text=text, page=2, pdf="documents/rail.pdf",
                     pictures=[Picture(file="pictures/a.png", caption="Route", width=400, height=300)])  # fmt: skip
    background = Evidence(passage=1, quote="Trains run at up to 300 kilometres per hour.")
    fact = Evidence(passage=1, quote="The line has 12 stations from Nangang to Zuoying.")
    answer = Answer(question="How many?", language="en", text="…", citations=[cited], backend="openai",
                    model="m", server="", scenes=[Scene(narration="It has 12 stations.", evidence=[background, fact])])  # fmt: skip
    (slide,) = slides_for(answer)
    assert slide.quote == fact.quote and slide.after == background.quote
    assert (slide.page_pdf, slide.page) == (str(kb_dir / "documents" / "rail.pdf"), 2)
    assert (slide.picture, slide.picture_caption) == (str(kb_dir / "pictures" / "a.png"), "Route")
    # A quote the page does not have (or a PDF gone) falls back to the quote as text.
    cited_elsewhere = cited.model_copy(update={"page": 1})
    (slide,) = slides_for(answer.model_copy(update={"citations": [cited_elsewhere]}))
    assert slide.page_pdf == "" and slide.page == 0


def test_a_pictures_zoom_moves_across_its_scene_and_is_spliced_exactly(typesetter, tmp_path):
    from ragreel.video.encode import rgb_to_yuv420p, splice_yuv420p
    from ragreel.video.frames import plan_stills
    from ragreel.video.layout import SubtitlePage, geometry_for

    geometry = geometry_for("portrait")
    slide = _slide(tmp_path)
    pages = [SubtitlePage(("The line has",), 0.0, 1.0, 0), SubtitlePage(("12 stations.",), 1.0, 2.0, 0)]
    stills = plan_stills(
        question="Q?", pages=pages, sources=[], language="en", typesetter=typesetter, geometry=geometry,
        fps=10, title_frames=10, answer_frames=20, closing_frames=10, slides=[slide],
    )  # fmt: skip
    moving = [s for s in stills if s.animate is not None]
    assert [s.name for s in moving] == ["page-1", "page-2"]  # the title, lead and sources stand still
    first, (x, y) = moving[0].animate(10)
    last, corner = moving[1].animate(29)
    assert corner == (x, y) and first.size == last.size and x % 2 == y % 2 == 0
    assert difference(first, last) > 1  # zoomed in by the scene's end
    assert difference(first, moving[0].animate(11)[0]) < difference(first, last)  # gradually
    # The encoder converts only the picture; the frame equals converting the whole painted frame.
    base = moving[0].draw()
    painted = base.copy()
    painted.paste(last, corner)
    spliced = splice_yuv420p(rgb_to_yuv420p(base), geometry.size, last, corner)
    assert spliced.data == rgb_to_yuv420p(painted).data


def difference(first, second) -> float:
    import numpy as np

    return float(np.abs(np.asarray(first, dtype=np.int16) - np.asarray(second, dtype=np.int16)).mean())


def test_in_the_video_the_picture_moves_the_page_region_is_marked_and_the_rest_stands_still(
    tmp_path, typesetter
):
    import numpy as np

    from ragreel.video.layout import geometry_for, layout_slide
    from tasks.render import render_video
    from tests.test_render import SOURCES, decode_frames, make_narration

    texts = ["The line has 12 stations.", "Trains run at up to 300 kilometres per hour."]
    narration = make_narration(tmp_path, texts, seconds=2.0)
    pdf = _pdf_with_figure(tmp_path / "rail.pdf", _figure(tmp_path / "figure.png"))
    picture_slide = _slide(tmp_path, narration=texts[0])
    page_slide = _slide(tmp_path, narration=texts[1], picture="", page_pdf=str(pdf), page=2,
                        quote="Trains run at up to 300 kilometres per hour")  # fmt: skip
    settings = Settings(aspect="landscape", fps=10, title_seconds=1.0, sources_seconds=1.0)
    result = render_video(narration, "Q?", SOURCES, tmp_path / "out", "en", settings=settings,
                          slides=[picture_slide, page_slide])  # fmt: skip
    first = narration.sentences[0]
    early, late, page = decode_frames(
        Path(result.mp4_path),
        [1.0 + first.start + 0.3, 1.0 + first.end - 0.1, 1.0 + narration.sentences[1].end - 0.2],
    )
    geometry = geometry_for("landscape")
    card = layout_slide(picture_slide, ["x"], typesetter, geometry, "en", (1, 2))
    left, top, right, bottom = next(m.box for m in card.media if m.kind == "picture")
    changed = np.abs(early.astype(int) - late.astype(int)).max(axis=2) > 40
    assert changed[top:bottom, left:right].mean() > 0.01  # the picture zoomed
    changed[top:bottom, left:right] = False
    band = min(line.y for line in card.lines if line.role == "subtitle")
    assert not changed[: band - 10].any()  # above the subtitles nothing else moved
    (box,) = [m.box for m in layout_slide(page_slide, ["x"], typesetter, geometry, "en", (2, 2)).media]
    region = page[box[1] : box[3], box[0] : box[2]].astype(int)
    marked = (np.abs(region - np.array(MARKER)).max(axis=2) < 30).mean()
    assert 0.01 < marked < 0.5  # the quote's lines marked on the page
