from ragreel.kb.chunking import chunk_document
from ragreel.kb.loaders import Document, Section
from ragreel.settings import Settings

SETTINGS = Settings(chunk_chars_en=300, chunk_chars_zh=100, chunk_overlap=0.15)


def test_english_chunks_end_at_sentences_and_carry_headings():
    text = " ".join(f"Sentence number {i} talks about brewing tea with care." for i in range(40))
    chunks = chunk_document(Document("Guide", [Section("Brewing > Water", text)]), SETTINGS)
    assert len(chunks) > 3
    assert all(len(c.text) <= 300 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
    assert all(c.heading == "Brewing > Water" and c.language == "en" for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_chinese_chunks_are_sized_by_characters_and_end_at_sentence_marks():
    sentences = [f"第{i}句說明高山茶的沖泡方法，水溫要夠高。" for i in range(30)]
    chunks = chunk_document(Document("茶", [Section("沖泡", "".join(sentences))]), SETTINGS)
    assert len(chunks) > 3
    assert all(len(c.text) <= 100 and c.language == "zh" for c in chunks)
    assert all(c.text.endswith("。") for c in chunks)
    # overlap: consecutive chunks share text
    assert any(chunks[i].text[-15:] in chunks[i + 1].text for i in range(len(chunks) - 1))


def test_long_paragraph_without_punctuation_is_still_split_and_kept_whole():
    text = "無標點的長段落" * 100
    chunks = chunk_document(Document("t", [Section("", text)]), SETTINGS)
    assert all(len(c.text) <= 100 for c in chunks)
    covered = "".join(c.text for c in chunks)
    assert all(piece in covered for piece in ("無標點的長段落",)) and len(covered) >= len(text)


def test_sections_never_share_a_chunk():
    doc = Document("t", [Section("A", "Short one."), Section("A > B", "Short two.")])
    chunks = chunk_document(doc, SETTINGS)
    assert [(c.heading, c.text) for c in chunks] == [("A", "Short one."), ("A > B", "Short two.")]
