from pathlib import Path

import pytest

from ragreel.kb.loaders import UnreadableFile, load_document


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_markdown_title_heading_paths_and_plain_text(tmp_path):
    md = write(
        tmp_path,
        "guide.md",
        """---
title: ignored front matter
---
# Brewing Guide

Intro with **bold** and a [link](https://example.com).

## Water

Use *soft* water.

### Temperature

Ninety degrees.

## Leaves

- three grams
- one pot

1. warm the pot
2. pour
""",
    )
    doc = load_document(md)
    assert doc.title == "Brewing Guide"
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("", "Intro with bold and a link."),
        ("Water", "Use soft water."),
        ("Water > Temperature", "Ninety degrees."),
        # A list item keeps its marker: a list under its label is read as one sentence.
        ("Leaves", "- three grams\n\n- one pot\n\n1. warm the pot\n\n2. pour"),
    ]


def test_markdown_without_h1_uses_file_name(tmp_path):
    doc = load_document(write(tmp_path, "night-markets.md", "夜市從傍晚開始營業。"))
    assert doc.title == "night markets"


def test_a_list_item_that_opens_with_code_gives_its_marker_to_no_later_paragraph(tmp_path):
    md = write(tmp_path, "steps.md", "# Steps\n\n- ```\n  pip install x\n  ```\n\nThen run it.\n")
    assert load_document(md).sections[0].text == "pip install x\n\nThen run it."


def test_a_markdown_table_keeps_each_row_on_one_line(tmp_path):
    """A row's cells belong together ("干" and "乾燥 幹部"): each row is one line of a table, and
    the header keeps its rule line, so the answer stage can quote a row as one sentence."""
    doc = load_document(
        write(
            tmp_path,
            "chars.md",
            "# 辨析表\n\n| 簡體字 | 可能繁體字 | 例詞 |\n| :-- | --- | --- |\n"
            "| 干 | 幹 乾 | 乾燥 幹部 |\n| 发 | 發 髮 | 頭髮 |\n\nThe end.\n",
        )
    )
    assert doc.sections[0].text == (
        "| 簡體字 | 可能繁體字 | 例詞 |\n| --- | --- | --- |\n\n| 干 | 幹 乾 | 乾燥 幹部 |\n\n"
        "| 发 | 發 髮 | 頭髮 |\n\nThe end."
    )


def test_html_title_headings_lists_and_no_scripts(tmp_path):
    html = write(
        tmp_path,
        "mrt.html",
        """<html><head><title>捷運指南</title><script>var x = 1;</script></head>
<body><nav>menu</nav><h1>捷運指南</h1><p>第一段。</p>
<h2>規定</h2><ul><li><p>禁止飲食。</p></li><li>請讓座。</li></ul>
<h3>罰則</h3><p>最高七千五百元。</p></body></html>""",
    )
    doc = load_document(html)
    assert doc.title == "捷運指南"
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("", "第一段。"),
        ("規定", "禁止飲食。\n\n請讓座。"),
        ("規定 > 罰則", "最高七千五百元。"),
    ]
    assert "var x" not in doc.text and "menu" not in doc.text


def test_text_file_title_from_first_line(tmp_path):
    doc = load_document(write(tmp_path, "notes.txt", "Garbage in Taipei\n\nTrucks play music.\n\nNo bins."))
    assert doc.title == "Garbage in Taipei"
    assert doc.text == "Trucks play music.\n\nNo bins."


def test_big5_text_is_decoded(tmp_path):
    doc = load_document(
        write(
            tmp_path,
            "big5.txt",
            "高山茶\n\n高山烏龍茶生長在海拔一千公尺以上的茶園，茶湯甘甜。".encode("big5"),
        )
    )
    assert doc.title == "高山茶" and "海拔一千公尺" in doc.text


def _pdf(path: Path, encrypt: bool = False) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Typhoon Handbook")
    pdf.set_font("helvetica", size=12)
    for heading, body in [
        ("Warnings", "A sea warning comes 24 hours ahead."),
        ("Days off", "Local governments decide on closures."),
    ]:
        pdf.add_page()
        pdf.start_section(heading)
        pdf.multi_cell(0, 8, body)
    if encrypt:
        pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.output(str(path))
    return path


def test_pdf_title_pages_and_outline_headings(tmp_path):
    doc = load_document(_pdf(tmp_path / "handbook.pdf"))
    assert doc.title == "Typhoon Handbook"
    assert [s.heading for s in doc.sections] == ["Warnings", "Days off"]
    assert "sea warning" in doc.sections[0].text and "Local governments" in doc.sections[1].text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("secret.pdf", None, "encrypted"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "PDF"),
        ("image.md", bytes(range(256)) * 8, "binary"),
        ("mojibake.txt", bytes([0x80 + (i * 37) % 100 for i in range(600)]), "UTF-8"),
        ("empty.md", b"\n\n   \n", "no text"),
        ("table.xlsx", b"PK", "unsupported"),
    ],
)
def test_unreadable_files_say_why(tmp_path, name, content, reason):
    path = _pdf(tmp_path / name, encrypt=True) if content is None else write(tmp_path, name, content)
    with pytest.raises(UnreadableFile, match=reason):
        load_document(path)


def test_lines_wrapped_mid_sentence_are_joined_in_text_markdown_and_html(tmp_path):
    """A sentence wrapped at 72 columns is one sentence again: a passage sentence cut at "since"
    loses the reason that follows it (the answer stage quotes and narrates whole sentences)."""
    from ragreel.text import split_sentences

    reason = (
        "If you intend to use the key together with a server certificate,\n"
        "it may be reasonable to avoid protecting it with a password, since\n"
        "otherwise someone would have to type in the password every time the\n"
        "server needs to access the key."
    )
    code = "Create it like this:\n\n  openssl genrsa -des3 -out privkey.pem 2048\n  chmod 600 privkey.pem\n"
    steps = (
        "Steps to follow before the server starts, in this order:\n"
        "- make the key with the openssl genrsa command shown above, and then\n"
        "  store it where only the server can read it\n- keep it private"
    )
    session = (
        "   >>> bfp = twstock.BestFourPoint(stock)\n"
        "   >>> bfp.best_four_point_to_buy()   # whether today is one of the four buying points, or not\n"
        "   'volume up and closing higher than the open, the three-day mean above the six-day mean'"
    )
    text = write(tmp_path, "keys.txt", f"Keys\n\n{reason}\n\n{code}\n{steps}\n\n{session}\n")
    markdown = write(tmp_path, "keys.md", f"# Keys\n\n{reason}\n\n全形文字換行的時候\n不需要空格。\n")
    html = write(tmp_path, "keys.html", f"<html><body><h1>Keys</h1><p>{reason}</p></body></html>")
    whole = " ".join(reason.split())
    for path in (text, markdown, html):
        body = load_document(path).sections[0].text
        assert whole in split_sentences(body), (path.name, body)
    body = load_document(text).sections[0].text
    assert "openssl genrsa -des3 -out privkey.pem 2048\nchmod 600 privkey.pem" in body  # code keeps its lines
    assert "or not\n'volume up" in body  # and an interpreter session its output line
    # a list keeps its items, each whole
    item = "- make the key with the openssl genrsa command shown above, and then store it where only the"
    assert f"\n{item} server can read it\n- keep it private" in body
    assert "全形文字換行的時候不需要空格。" in load_document(markdown).sections[0].text


def test_underlined_lines_of_a_text_file_are_its_headings(tmp_path):
    """reStructuredText and Setext headings name their sections, so a passage carries its heading
    (a name given only there, like an idiom's, is something the answer may say)."""
    text = write(
        tmp_path,
        "sorting.txt",
        "Sorting HOW TO\n**************\n\nIntro text.\n\nBasics\n======\n\nCall sorted().\n\n"
        "Details\n-------\nStable sorts keep order.\n\nDecorate-Sort-Undecorate\n========================\n\n"
        "Wrap, sort, unwrap.\n",
    )
    document = load_document(text)
    assert document.title == "Sorting HOW TO"
    assert [(s.heading, s.text) for s in document.sections] == [
        ("", "Intro text."),
        ("Basics", "Call sorted()."),
        ("Basics > Details", "Stable sorts keep order."),
        ("Decorate-Sort-Undecorate", "Wrap, sort, unwrap."),
    ]
    plain = load_document(write(tmp_path, "plain.txt", "A title\n\nA paragraph.\n\n---\n\nAfter a rule.\n"))
    assert plain.title == "A title" and [s.heading for s in plain.sections] == [""]


def test_numbered_lines_standing_alone_are_a_text_files_headings(tmp_path):
    """Plain-text HOWTOs and RFCs number their sections; a passage then carries its section's name
    ("Creating a self-signed test certificate" for a bare command line)."""
    text = (
        "HOWTO certificates\n\n1. Introduction\n\nHow you handle certificates depends on your role.\n\n"
        "4. Creating a self-signed test certificate\n\nYou can create one yourself.\n\n"
        "  openssl req -new -x509 -days 1095\n\n4.1 Options\n\nDays count from today.\n"
    )
    document = load_document(write(tmp_path, "certs.txt", text))
    assert document.title == "HOWTO certificates"
    assert [s.heading for s in document.sections] == [
        "Introduction",
        "Creating a self-signed test certificate",
        "Creating a self-signed test certificate > Options",
    ]
    assert "openssl req -new -x509 -days 1095" in document.sections[1].text
    # Numbered lines next to each other are a list, a numbered sentence is a sentence, and a date
    # is no number of a section.
    steps = "1. Keys\n\nMake one.\n\n2. Use\n\nRun:\n\n1. Install it\n\n2. Run it\n\nThat is all.\n"
    assert [(s.heading, s.text) for s in load_document(write(tmp_path, "steps.txt", steps)).sections] == [
        ("Keys", "Make one."),
        ("Use", "Run:\n\n1. Install it\n\n2. Run it\n\nThat is all."),
    ]
    rules = "Rules\n\n1. A run counts.\n\nText.\n\n2. A pair counts.\n\nMore text.\n"
    assert [s.heading for s in load_document(write(tmp_path, "rules.txt", rules)).sections] == [""]
    diary = "15 March 2024\n\nRain all day.\n\n16 March 2024\n\nSun.\n"
    days = load_document(write(tmp_path, "diary.txt", diary))
    assert [s.heading for s in days.sections] == [""] and "16 March 2024" in days.text
    # A file that opens with its first section takes no title from the text under it.
    memo = load_document(
        write(tmp_path, "memo.txt", "1. 簡介\n\n這份備忘很短。\n\n2. 金鑰\n\n先產生金鑰。\n")
    )
    assert memo.title == "memo"
    assert [(s.heading, s.text) for s in memo.sections] == [
        ("簡介", "這份備忘很短。"),
        ("金鑰", "先產生金鑰。"),
    ]
