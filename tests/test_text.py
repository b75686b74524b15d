from ragreel.text import detect_language, split_sentences, to_traditional


def test_detect_language():
    assert detect_language("How hot should the water be?") == "en"
    assert detect_language("高山烏龍茶要種在多高的地方？") == "zh"
    assert detect_language("用 Prefect 排程 batch 工作的方法是什麼？") == "zh"
    assert detect_language("The word 茶 means tea in Chinese and Japanese.") == "en"


def test_split_sentences_english_keeps_abbreviations_and_decimals():
    text = "Dr. Lin brewed 3.5 g of tea, e.g. oolong. Was it good? Yes!"
    assert split_sentences(text) == ["Dr. Lin brewed 3.5 g of tea, e.g. oolong.", "Was it good?", "Yes!"]


def test_split_sentences_chinese_without_spaces():
    text = "高山茶生長在海拔一千公尺以上。茶湯甘甜！你喝過嗎？要用熱水；不要太燙"
    assert split_sentences(text) == ["高山茶生長在海拔一千公尺以上。", "茶湯甘甜！", "你喝過嗎？", "要用熱水；", "不要太燙"]


def test_split_sentences_mixed_and_newlines():
    assert split_sentences("我用 Prefect 3。It works.\nNext line") == ["我用 Prefect 3。", "It works.", "Next line"]


def test_to_traditional():
    assert to_traditional("台湾的茶叶") == "臺灣的茶葉"
    assert to_traditional("plain English") == "plain English"
