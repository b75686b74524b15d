from ragreel.text import TAIWAN, convert_chinese, detect_language, split_sentences


def test_detect_language():
    assert detect_language("How hot should the water be?") == "en"
    assert detect_language("高山烏龍茶要種在多高的地方？") == "zh"
    assert detect_language("用 Prefect 排程 batch 工作的方法是什麼？") == "zh"
    assert detect_language("The word 茶 means tea in Chinese and Japanese.") == "en"


def test_split_sentences_english_keeps_abbreviations_and_decimals():
    text = "Dr. Lin brewed 3.5 g of tea, e.g. oolong. Was it good? Yes!"
    assert split_sentences(text) == ["Dr. Lin brewed 3.5 g of tea, e.g. oolong.", "Was it good?", "Yes!"]
    # An initial inside quotes ends no sentence either.
    assert split_sentences("The plate read 'W. RABBIT' in brass. She went in.") == [
        "The plate read 'W. RABBIT' in brass.",
        "She went in.",
    ]
    # A mark inside brackets ends no sentence.
    assert split_sentences("However, some (most?) authorities encode them. Convert them.") == [
        "However, some (most?) authorities encode them.",
        "Convert them.",
    ]


def test_split_sentences_chinese_without_spaces():
    text = "高山茶生長在海拔一千公尺以上。茶湯甘甜！你喝過嗎？要用熱水；不要太燙"
    assert split_sentences(text) == [
        "高山茶生長在海拔一千公尺以上。",
        "茶湯甘甜！",
        "你喝過嗎？",
        "要用熱水；",
        "不要太燙",
    ]


def test_split_sentences_mixed_and_newlines():
    assert split_sentences("我用 Prefect 3。It works.\nNext line") == [
        "我用 Prefect 3。",
        "It works.",
        "Next line",
    ]


def test_convert_chinese():
    assert convert_chinese("台湾的茶叶") == "臺灣的茶葉"
    assert convert_chinese("软件和鼠标", TAIWAN) == "軟體和滑鼠"  # Taiwanese vocabulary, not only characters
    assert convert_chinese("plain English") == "plain English"


def test_markdown_to_text_keeps_words_code_and_identifiers():
    from ragreel.text import markdown_to_text

    text = markdown_to_text(
        "## Context managers\n\nDefine `__enter__` and __exit__; catch `except (RuntimeError, TypeError):`.\n"
        "- **Bold** item with a [link](https://example.com/a_(b))\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "```python\nprint('not read aloud')\n```\n"
    )
    assert text.splitlines() == [
        "Context managers",
        "Define __enter__ and __exit__; catch except (RuntimeError, TypeError):.",
        "Bold item with a link",
        "a, b",
        "1, 2",
    ]


def test_decode_bytes_reads_common_encodings_and_refuses_binary():
    import pytest

    from ragreel.text import UndecodableText, decode_bytes

    assert decode_bytes("高山茶".encode("big5")) == "高山茶"
    assert decode_bytes("\ufeffquestion".encode()) == "question"
    assert decode_bytes("茶,tea".encode("utf-16")) == "茶,tea"
    with pytest.raises(UndecodableText, match="binary"):
        decode_bytes(bytes(range(256)) * 4)


def test_wrapped_lines_join_as_each_script_writes():
    from ragreel.text import inline_text, line_joint, parse_markdown

    assert line_joint("d", "w") == " "  # English words
    assert line_joint("的", "字") == ""  # Chinese runs on
    assert line_joint("用", "t") == " " and line_joint("k", "套") == " "  # "使用 twstock 套件"
    assert line_joint("。", "N") == "" and line_joint("d", "「") == ""  # no space at wide punctuation
    # Markdown soft breaks and plain-text unwrapping follow the same rule.
    paragraph = next(t for t in parse_markdown("使用\ntwstock\n套件，\n查詢。\n") if t.type == "inline")
    assert inline_text(paragraph, join_lines=True) == "使用 twstock 套件，查詢。"
    from ragreel.kb.loaders import _unwrap_lines

    assert (
        _unwrap_lines("這一行很長很長很長很長用\ntwstock 查詢\n", longest=12)
        == "這一行很長很長很長很長用 twstock 查詢\n"
    )
