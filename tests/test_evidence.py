"""The evidence check, the script reader and the spoken form of code: pure text, no model."""

from __future__ import annotations

import pytest

from ragreel.llm.evidence import (
    asks_yes_or_no,
    begins_yes_or_no,
    candidate_sentences,
    check_scene,
    extractive_scene,
    left_out,
    locate_quote,
    numbers_in,
    question_parts,
    readable,
    restates_question,
    says,
    table_row_sentence,
    talks_about_sources,
    terms_in,
    with_code_joined,
    with_its_section,
    without_source_lead_ins,
)
from ragreel.llm.script import parse_script, tidy_narration
from ragreel.schemas import Evidence, Passage, Scene
from ragreel.speech.prepare import spoken_code


def passage(text: str, language: str = "en") -> Passage:
    return Passage(chunk_id="a#0", source="a.md", title="A", text=text, language=language, score=0.5, rank=1)


LEAVE = passage(
    "勞工在同一雇主繼續工作滿一定期間者，應給予特別休假。五年以上十年未滿者，每年十五日。"
    "十年以上者，每一年加給一日，加至三十日為止。",
    "zh",
)
TEA = passage(
    "Oolong tea is best brewed with water between 90 and 95 degrees Celsius. Rinse the leaves quickly "
    "first, then steep them for about one minute.\nA 2,048-bit key is the minimum."
)


@pytest.mark.parametrize(
    "quote, expected",
    [
        ("Oolong tea is best brewed with water between 90 and 95", 0),  # part of a sentence
        ("oolong tea is  best brewed with water between 90 & 95 degrees Celsius", 0),  # a near copy
        ("Celsius. Rinse the leaves quickly first", "two"),  # across two sentences
        ("Black tea is brewed with boiling water.", None),
        ("tea", None),  # too short to be evidence
    ],
)
def test_a_quote_is_located_as_the_passages_own_sentences(quote, expected):
    sentences = [
        "Oolong tea is best brewed with water between 90 and 95 degrees Celsius.",
        "Rinse the leaves quickly first, then steep them for about one minute.",
    ]
    found = locate_quote(quote, TEA)
    if expected is None:
        assert found is None
    elif expected == "two":
        assert found == " ".join(sentences)
    else:
        assert found == sentences[expected]


def test_quotes_match_across_simplified_and_traditional_and_punctuation():
    assert (
        locate_quote("十年以上者每一年加给一日加至三十日为止", LEAVE)
        == "十年以上者，每一年加給一日，加至三十日為止。"
    )


@pytest.mark.parametrize(
    "text, values",
    [
        ("It takes 20 days, not 2,048 or 3.5.", {"20", "2048", "3.5"}),
        ("每年十五日，最多三十日，三天", {"15", "30", "3"}),
        ("百分之五十的人", {"50", "0.5"}),
        ("一些人十分喜歡，一個方法", set()),  # words, not numbers
        ("twenty days and twice", {"20", "2"}),
        ("X25519 and -des3 and utf8 and python3", set()),  # identifiers are terms, not numbers
        ("二〇二四年", {"2024"}),
    ],
)
def test_numbers_are_read_by_value(text, values):
    assert numbers_in(text) == values


def test_evidence_counts_every_numeral():
    assert numbers_in("一年加給一日", lenient=True) == {"1"}
    assert "0.5" in numbers_in("50%", lenient=True)


@pytest.mark.parametrize(
    "narration, problem",
    [
        ("Brew oolong at 90 to 95 degrees Celsius.", None),
        ("Brew oolong at 80 degrees.", "the number(s) 80"),
        ("Brew oolong at ninety degrees, steep it for one minute.", None),
        ("Use `genpkey` for it.", "the term(s) genpkey"),
        ("The first passage lists the temperature.", "talks about the passages"),
        ("It is explained in the brewing notes.", "talks about the passages"),
        ("How hot should the water be for oolong?", "repeats the question"),
        ("The water for oolong should be hot.", "repeats the question"),
        ("Visit https://tea.example for more.", "web address"),
        ("烏龍茶用九十度的水。", "not in English"),
    ],
)
def test_scene_check(narration, problem):
    quote = "Oolong tea is best brewed with water between 90 and 95 degrees Celsius."
    scene = Scene(narration=narration, evidence=[Evidence(passage=1, quote=quote)])
    result = check_scene(scene, [TEA], "How hot should the water be for oolong?", "en")
    if problem is None:
        assert result.passed, result.problems
    else:
        assert any(problem in p for p in result.problems), result.problems


def test_ninety_words_need_their_value_in_the_quote():
    scene = Scene(
        narration="Use water at ninety degrees.",
        evidence=[Evidence(passage=1, quote="Use hot water always.")],
    )
    result = check_scene(scene, [passage("Use hot water always.")], "How hot?", "en")
    assert "the quote 'Use hot water always.' is not a sentence" not in " ".join(result.problems)


def test_chinese_scene_checks():
    quote = "十年以上者，每一年加給一日，加至三十日為止。"
    question = "工作十年以上的特休最多幾天？"

    def problems(narration: str) -> list[str]:
        scene = Scene(narration=narration, evidence=[Evidence(passage=1, quote=quote)])
        return check_scene(scene, [LEAVE], question, "zh").problems

    assert problems("特休每年多一天，最多到三十天。") == []
    assert problems("特休最多可以到 20 天。") == ["the number(s) 20 in the narration are not in its quote"]
    assert "it talks about the passages instead of saying what they say" in problems(
        "資料中詳細描述了特休的規定。"
    )
    assert problems("工作十年以上的特休最多幾天？") == ["it repeats the question instead of answering it"]


def test_a_scene_that_says_what_its_quote_does_not_fails():
    row = (
        "干，幹 乾 干 榦，「干」本意爲盾牌，意義與武器有關。「乾」意義爲「水分少」。「幹」意義爲「主幹」"
        "或爲動詞。「榦」特別用於「版榦」，干戈 干涉 乾燥 幹部 版榦。"
    )
    table = passage(row, "zh")

    def problems(narration: str) -> list[str]:
        scene = Scene(narration=narration, evidence=[Evidence(passage=1, quote=row)])
        return check_scene(scene, [table], "「干部」的繁體怎麼寫？", "zh").problems

    # Glosses no source gives: a small model's, on the words of a table row.
    assert any(
        p.startswith("it says what its passage does not") for p in problems("幹部是中間人，版榦是船隻。")
    )
    assert problems("「乾」表示水分少，例如乾燥；「幹」表示主幹，例如幹部。") == []
    english = Scene(
        narration="Brew it in a clay pot for luck.",
        evidence=[Evidence(passage=1, quote="Oolong tea is best brewed with water between 90 and 95")],
    )
    assert any(p.startswith("it says what") for p in check_scene(english, [TEA], "How hot?", "en").problems)


def test_yes_no_and_new_facts_are_not_restating():
    assert not restates_question(
        "No, you do not need permission to use the logo.", "Do I need permission to use the logo?"
    )
    assert not restates_question(
        "The genpkey command produces an X25519 key.", "What command produces an X25519 key?"
    )
    assert not restates_question(
        "A new RSA key should have 2048 bits.", "How many bits should a new RSA key have?"
    )
    assert restates_question("如果中途 break 還會跑嗎", "for 迴圈的 else 是什麼？如果中途 break 還會跑嗎？")


@pytest.mark.parametrize(
    ("narration", "statement"),
    [
        (
            "這段說明提到，最高手牌是J、5、5、5。這段說明提到，每手最多29分。",
            "最高手牌是J、5、5、5。每手最多29分。",
        ),
        ("根據第2段資料所述，金鑰要 2048 位元。", "金鑰要 2048 位元。"),
        ("文中指出金鑰至少要 2048 位元。", "金鑰至少要 2048 位元。"),
        ("資料顯示，台北人口最多。", "台北人口最多。"),
        (
            "According to the passage, the library opens at 9. Passage 2 states that it closes at 8.",
            "The library opens at 9. It closes at 8.",
        ),
        ("According to the document, sorted() returns a new list.", "sorted() returns a new list."),
        # Not a lead-in, or one whose object is the content: left whole, for the check to refuse.
        ("The passage describes the water temperature.", "The passage describes the water temperature."),
        ("原文說明了如何安裝。", "原文說明了如何安裝。"),
        ("說明書放在盒子裡。", "說明書放在盒子裡。"),
        ("The document root is /var/www.", "The document root is /var/www."),
        ("文字的本意是盾牌。", "文字的本意是盾牌。"),
    ],
)
def test_a_lead_in_about_the_sources_is_cut_from_the_statement(narration, statement):
    assert without_source_lead_ins(narration) == statement
    assert not talks_about_sources(statement) or statement == narration


def test_talking_about_sources_in_both_languages():
    for text in (
        "According to the document, it is hot.",
        "Passage 2 says so.",
        "This document explores the various techniques for sorting data using Python.",
        "Yes, Andrew Dalke and Raymond Hettinger are the authors of this document.",
        "在「數字」一節中有說明。",
        "這份資料列出了",
        "這段說明提到，最高手牌是J、5、5、5。",
        "文中指出金鑰至少要 2048 位元。",
    ):
        assert talks_about_sources(text), text
    for text in (
        "The document root is /var/www.",
        "設定文件要放在家目錄。",
        "Water boils at 100 degrees.",
        "說明書放在盒子裡。",
        "這段時間的內容更新較少。",
        "Type your password in this text field.",
    ):
        assert not talks_about_sources(text), text


def test_code_terms_are_found_and_must_be_quoted():
    assert terms_in("Call os.path.join() with `sep` and --force, or __enter__ and .python_history") == [
        "sep",
        "os.path.join()",
        "--force",
        "__enter__",
        ".python_history",
    ]


def test_extractive_scene_is_its_evidence_and_refuses_another_language():
    scene = Scene(
        narration="wrong",
        key_point="The passage",
        evidence=[Evidence(passage=1, quote="best brewed with water between 90 and 95")],
    )
    extractive = extractive_scene(scene, [TEA], "en")
    assert extractive.narration == "Oolong tea is best brewed with water between 90 and 95 degrees Celsius."
    assert (
        extractive.origin == "extractive" and extractive.key_point == ""
    )  # a headline about "the passage" goes
    assert extractive_scene(scene, [TEA], "zh") is None


@pytest.mark.parametrize(
    "reply",
    [
        '{"scenes": [{"passage": 1, "quote": "q text here", "key_point": "K", "narration": "N."}]}',
        '```json\n{"scenes": [{"passage": "[1]", "quote": "q text here", "key_point": "K", "narration": "N."}]}\n```',
        'Here is the script: [{"passage": 1, "quote": "q text here", "narration": "N."}] Hope it helps.',
        '{"scenes": [{"passage": 1, "quote": "q text here", "key_point": "K", "narration": "N."}, {"passage": 2, "quo',
    ],
)
def test_scripts_are_read_leniently(reply):
    [scene] = parse_script(reply, "en")
    assert scene.narration == "N." and scene.evidence == [Evidence(passage=1, quote="q text here")]


@pytest.mark.parametrize(
    "reply", ["", "Oolong is hot.", "{}", '{"scenes": []}', '{"scenes": [{"narration": "no quote"}]}']
)
def test_replies_without_a_script_read_as_none(reply):
    assert parse_script(reply, "en") is None


def test_tidy_narration_cuts_a_lead_in_that_points_at_a_citation_mark():
    assert (
        tidy_narration("According to [2], oolong wants 90 degrees [2].", "en") == "Oolong wants 90 degrees."
    )
    assert tidy_narration("根據[1]，烏龍茶要用九十五度的水[1]。", "zh") == "烏龍茶要用九十五度的水。"


def test_tidy_narration_keeps_code_and_drops_markers():
    assert (
        tidy_narration("Write **except (A, B):** [1] in  `x.py` [2, 3].", "en")
        == "Write except (A, B): in `x.py`."
    )
    assert tidy_narration("用这个软件的信息[1]。", "zh") == "用這個軟體的資訊。"


def test_chinese_narration_keeps_what_it_copies_from_its_quote():
    quote = "「干」本意爲盾牌，意義與武器有關。「乾」意義爲「水分少」。"
    # Converted whole, the quoted 干 became 幹: the narration then said the opposite of its source.
    assert tidy_narration("「干」本意爲盾牌，和武器有关。", "zh", quote) == "「干」本意爲盾牌，和武器有關。"
    assert tidy_narration("「干」本意爲盾牌。", "zh") == "「幹」本意為盾牌。"  # no quote: all converted
    assert tidy_narration("用这个软件。", "zh", "用这个软件的信息") == "用這個軟體。"  # a Simplified quote


@pytest.mark.parametrize(
    "text, spoken",
    [
        ("__enter__ and __exit__", "dunder enter and dunder exit"),
        ("x += 1", "x plus equals 1"),
        ("call os.path.join() now", "call os dot path dot join now"),
        ("saved in .python_history", "saved in dot python history"),
        ("pass --force", "pass dash dash force"),
        ("e.g. 3.12", "e.g. 3.12"),  # abbreviations and numbers are left to the number reader
    ],
)
def test_spoken_form_of_code(text, spoken):
    assert spoken_code(text, "en") == spoken


def test_spoken_form_of_operators_in_chinese():
    assert spoken_code("用 x += 1", "zh") == "用 x 加等於 1"


def test_a_chinese_quote_over_two_sentences_is_joined_without_a_space():
    found = locate_quote("每年十五日。十年以上者", LEAVE)
    assert found == "五年以上十年未滿者，每年十五日。十年以上者，每一年加給一日，加至三十日為止。"


def test_evidence_is_completed_with_the_passage_sentence_that_holds_a_stated_command():
    keys = passage(
        "To create a key protected by a passphrase, use the des3 option.\n"
        "openssl genrsa -des3 -out privkey.pem 2048\n"
        "The number 2048 is the size of the key, in bits."
    )
    scene = Scene(
        narration="Run openssl genrsa -des3 -out privkey.pem 2048 to get a 2048-bit key with a passphrase.",
        evidence=[
            Evidence(passage=1, quote="To create a key protected by a passphrase, use the des3 option.")
        ],
    )
    result = check_scene(scene, [keys], "How do I make a key with a passphrase?", "en")
    assert result.passed, result.problems
    assert [e.quote for e in result.scene.evidence] == [
        "To create a key protected by a passphrase, use the des3 option.",
        "openssl genrsa -des3 -out privkey.pem 2048",
    ]
    # A number no sentence of the cited passage has is still a failure.
    wrong = scene.model_copy(update={"narration": "Use a 4096-bit key."})
    assert "4096" in " ".join(check_scene(wrong, [keys], "How big?", "en").problems)


def test_a_quote_running_over_two_sentences_is_matched_as_a_near_copy():
    keys = passage(
        "The number 2048 is the size of the key, in bits. Today, 2048 or higher is recommended. Keep it safe."
    )
    found = locate_quote("The number 2048 is the key size in bits. Today 2048 or higher is recommended", keys)
    assert found == "The number 2048 is the size of the key, in bits. Today, 2048 or higher is recommended."


def test_the_extractive_answer_takes_the_sentences_that_share_most_with_the_question():
    from ragreel.llm.evidence import best_sentences

    about = passage("「裏」只用於「裡面」的意思。「里」是長度單位，也用於「鄰里」。", "zh")
    other = passage("簡繁轉換要看上下文。", "zh")
    scenes = best_sentences("「里」什麼時候要寫成「裏」？", [other, about], "zh", count=1)
    # A single character asked about is matched as it stands (Simplified 里 is also 裏).
    assert [(s.narration, s.evidence[0].passage, s.origin) for s in scenes] == [
        ("「裏」只用於「裡面」的意思。", 2, "extractive")
    ]
    # Nothing shared at all: the best-ranked passage's opening, never no answer.
    unrelated = best_sentences("Why?", [passage("Tea is a drink. It is hot.")], "en")
    assert [s.narration for s in unrelated] == ["Tea is a drink.", "It is hot."]
    assert best_sentences("Why?", [passage("茶是飲料。", "zh")], "en") == []


README_ZH = passage(
    "使用 `success` 確認資料之正確性。如果為 `False`，代表取得之資料有誤，請再度參照 `rtmessage` 取得錯誤訊息。",
    "zh",
)


def test_an_unbalanced_backtick_never_makes_a_sentence_a_term():
    assert terms_in("使用 success` 確認資料之正確性。如果為 `False`，代表有誤。") == ["False"]


def test_english_words_in_a_chinese_scene_must_come_from_its_quote():
    quote = "如果為 `False`，代表取得之資料有誤，請再度參照 `rtmessage` 取得錯誤訊息。"
    good = Scene(
        narration="結果是 False 時，請看 rtmessage 的錯誤訊息。", evidence=[Evidence(passage=1, quote=quote)]
    )
    assert check_scene(good, [README_ZH], "出錯時去哪裡看錯誤訊息？", "zh").passed
    # A rewrite that copied the checker's own words back into the narration.
    leaked = good.model_copy(update={"narration": "請看 rtmessage 的錯誤訊息、rtcode are not in its quote。"})
    problems = check_scene(leaked, [README_ZH], "出錯時去哪裡看錯誤訊息？", "zh").problems
    assert any("English word(s) rtcode, are, not, in, its, quote" in p for p in problems), problems


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Tea is a drink.", True),
        ("依據可包括：", False),  # a label for the list that follows
        ("傭兵 雇傭 傭人 佣金", False),  # a row of a word table
        ("遊 游", False),
        ("高山烏龍茶用九十度的水沖泡。", True),
        ("Use `twstock.codes`.", True),
        (">>> import twstock >>> stock = twstock.Stock('2330')", False),
        ("Creating a certificate request", False),  # a heading
        ("安裝與設定", False),
        ("Use the genrsa command with the -des3 option for a passphrase", True),  # long: a sentence
        # A colon after a statement that names what the list holds: said as a statement.
        ("This idiom is called Decorate-Sort-Undecorate after its three steps:", True),
        ("To generate a private key for a certificate, use the following command:", False),
        ("其中最常用的幾個參數包括：", False),
        # "For example," opens a sentence that says its step itself.
        (
            "For example, to sort the student data by descending grade and then ascending age, do the age"
            " sort first and then sort again using grade:",
            True,
        ),
        ("For example, use the following command:", False),
        # A program's lines and printed values are shown, not said; a command answers "how do I".
        ("return repr((self.name, self.grade, self.age))", False),
        ("const vConsole = new VConsole();", False),
        ("[('dave', 'B', 10), ('jane', 'B', 12), ('john', 'A', 15)]", False),
        ("215.0, 211.5, 208.5, 210.0, 208.5, 209.0, 207.0, 208.5,", False),
        ('"fullname": "台灣積體電路製造股份有限公司",', False),  # a line of JSON
        ("openssl req -new -x509 -key privkey.pem -out cacert.pem -days 1095", True),
        ("UPDATE accounts SET balance = balance - 100.00 WHERE name = 'Alice';", True),
    ],
)
def test_only_sentences_that_stand_alone_are_narrated_as_quotes(sentence, expected):
    from ragreel.llm.evidence import narratable

    assert narratable(sentence) is expected


def test_according_to_the_original_text_is_talking_about_the_sources():
    assert talks_about_sources("根據原文，這類方言詞通常不收錄。")
    assert not talks_about_sources("這類方言詞通常不收錄。")


def test_a_narration_repeats_an_earlier_one_when_it_adds_no_number_and_few_words():
    from ragreel.llm.evidence import repeats

    assert repeats("The number of stations on the line is 12.", "The line has 12 stations.")
    assert repeats("高山茶生長在海拔一千公尺以上。", "高山茶生長在海拔一千公尺以上的茶園。")
    assert not repeats("The line has 13 stations.", "The line has 12 stations.")  # a new number
    assert not repeats("Trains stop at 12 stations and connect to the MRT.", "The line has 12 stations.")
    assert not repeats("梨山茶園的海拔可達兩千公尺以上。", "海拔一千公尺以上的烏龍茶才稱為高山茶。")


def test_the_main_evidence_is_the_quote_holding_the_narrations_number_then_its_words():
    from ragreel.llm.evidence import main_evidence
    from ragreel.schemas import Evidence

    background = Evidence(passage=1, quote="The line runs along the west coast.")
    fact = Evidence(passage=1, quote="The line has 12 stations.")
    assert main_evidence("It has 12 stations.", [background, fact]) == fact
    assert main_evidence("It runs along the coast.", [fact, background]) == background
    assert main_evidence("Something else.", [fact, background]) == fact  # ties: the model's order


KEYS = passage("To create a passphrase-protected key, use openssl genrsa -des3 -out privkey.pem 2048 today.")


@pytest.mark.parametrize(
    "narration, dropped",
    [
        ("Create a protected key with a passphrase.", ["2048", "-des3", "-out", "privkey.pem"]),
        ("Run genrsa with -des3 and 2048 bits; it writes privkey.pem.", []),
        ("用 genrsa 加上 -des3 和 2048，產生 privkey.pem。", []),  # across languages, the terms stay
        ("Use -des3 and 2048 bits.", []),  # half of what the quote states is enough
    ],
)
def test_a_narration_that_drops_its_quotes_numbers_and_terms_leaves_them_out(narration, dropped):
    assert left_out(narration, KEYS.text) == dropped
    result = check_scene(
        Scene(narration=narration, evidence=[Evidence(passage=1, quote=KEYS.text)]),
        [KEYS],
        "How do I make an RSA key?",
        "zh" if "用" in narration else "en",
    )
    assert result.left_out == dropped and result.sound  # nothing in it is wrong
    assert result.passed == (not dropped)


@pytest.mark.parametrize(
    "question, language, expected",
    [
        ("Does sorting a list keep items that compare equal in their original order?", "en", True),
        ("My package.json pins ~1.2.3. Will npm pull in 1.3.0 once it's out?", "en", True),
        ("If a variable is already defined in my shell, will dotenv replace it?", "en", True),
        ("How many bits should a new RSA key have?", "en", False),
        ("Which command makes an X25519 key, and does it need a curve name?", "en", False),
        ("放密碼的 .env 檔可以直接 commit 進 git 嗎？", "zh", True),
        ("cn2an 轉得動「1百23」嗎？要開哪個模式？", "zh", True),  # the first question decides
        ("美國憲法規定多久要做一次人口普查？", "zh", False),
        ("哪一篇文章描寫世外桃源嗎？", "zh", False),
    ],
)
def test_yes_or_no_questions_are_recognised(question, language, expected):
    assert asks_yes_or_no(question, language) is expected


def test_the_first_scene_of_a_yes_or_no_answer_must_begin_with_it():
    question = "Should oolong be brewed with boiling water?"
    scene = Scene(
        narration="Oolong wants water between 90 and 95 degrees Celsius.",
        evidence=[Evidence(passage=1, quote="Oolong tea is best brewed with water between 90 and 95")],
    )
    assert check_scene(scene, [TEA], question, "en", first=True).no_yes_no
    assert not check_scene(scene, [TEA], question, "en").no_yes_no  # a later scene explains
    said = scene.model_copy(update={"narration": "No: oolong wants water between 90 and 95 degrees Celsius."})
    assert check_scene(said, [TEA], question, "en", first=True).passed
    assert begins_yes_or_no("不可以，密碼不要放進 git。", "zh") and not begins_yes_or_no(
        "密碼檔要排除。", "zh"
    )


def test_a_name_may_come_from_the_title_of_the_passage_quoted():
    memorial = Passage(
        chunk_id="m#0",
        source="zh/qian-chushi-biao.txt",
        title="出師表",
        text="先帝不以臣卑鄙，猥自枉屈，三顧臣於草廬之中，諮臣以當世之事。",
        language="zh",
        score=0.5,
        rank=1,
    )
    scene = Scene(
        narration="「三顧茅廬」出自諸葛亮的「出師表」：先帝親自到草廬拜訪了他。",
        evidence=[Evidence(passage=1, quote="先帝不以臣卑鄙，猥自枉屈，三顧臣於草廬之中")],
    )
    result = check_scene(scene, [memorial], "「三顧茅廬」這個典故是從哪篇文章來的？", "zh")
    assert result.sound, result.problems
    other = scene.model_copy(update={"narration": "這個典故出自「隆中對」：先帝到草廬拜訪了他。"})
    assert (
        "the term(s) 隆中對 are not in its quote"
        in check_scene(other, [memorial], "典故出處？", "zh").problems
    )


@pytest.mark.parametrize(
    "sentence, narrated",
    [
        (
            "The `Timsort <https://en.wikipedia.org/wiki/Timsort>`_ algorithm does multiple sorts efficiently.",
            "The Timsort algorithm does multiple sorts efficiently.",
        ),
        (
            "Sorts are guaranteed to be `stable <https://x.org/wiki/Sort#Stability>`_\\.",
            "Sorts are guaranteed to be stable.",
        ),
        (
            "Both :meth:`list.sort` and :func:`sorted` take a *reverse* flag.",
            "Both list.sort and sorted take a reverse flag.",
        ),
        ("請看 [說明文件](https://example.org/docs) 的第二節。", "請看 說明文件 的第二節。"),
        (
            "* The sort is stable -- if two items have the same key, their order will be preserved.",
            "The sort is stable -- if two items have the same key, their order will be preserved.",
        ),
    ],
)
def test_quotes_are_narrated_without_link_targets_or_markup(sentence, narrated):
    assert readable(sentence) == narrated
    scene = extractive_scene(
        Scene(narration="x", evidence=[Evidence(passage=1, quote=sentence)]),
        [passage(sentence, "zh" if "請" in sentence else "en")],
        "zh" if "請" in sentence else "en",
    )
    assert scene.narration == narrated and scene.evidence[0].quote == sentence  # the source's words kept
    if "Timsort" in sentence:
        assert left_out("The Timsort algorithm is efficient.", sentence) == []  # a web address is no term


def test_a_statement_before_a_list_is_narrated_without_its_colon():
    from ragreel.llm.evidence import readable

    assert readable("This idiom is called Decorate-Sort-Undecorate after its three steps:") == (
        "This idiom is called Decorate-Sort-Undecorate after its three steps."
    )
    assert (
        readable("OpenCC 的地區詞表原則上只收名詞，理由有兩個：")
        == "OpenCC 的地區詞表原則上只收名詞，理由有兩個。"
    )
    # reST: "::" announces a literal block; ``x`` is code.
    sentence = (
        "使用 :mod:`realtime` 時，需先確認 ``success`` 是否為 ``True``，請參照 ``rtmessage`` 取得錯誤訊息::"
    )
    narration = readable(sentence)
    assert (
        narration == "使用 realtime 時，需先確認 `success` 是否為 `True`，請參照 `rtmessage` 取得錯誤訊息。"
    )
    scene = Scene(narration=narration, evidence=[Evidence(passage=1, quote=sentence)])
    assert check_scene(scene, [passage(sentence, "zh")], "出錯時去哪裡看錯誤訊息？", "zh").passed
    # A relative reference (:class:`.Stock`) is said as its name: ".Stock" split the sentence at "在."
    sentence = "在 :class:`.Stock` 之中的資料，可以透過:attr:`date` 取得各個資料集之中相對應的日期::"
    assert readable(sentence) == "在 Stock 之中的資料，可以透過date 取得各個資料集之中相對應的日期。"
    scene = Scene(narration=readable(sentence), evidence=[Evidence(passage=1, quote=sentence)])
    assert check_scene(scene, [passage(sentence, "zh")], "twstock 要怎麼抓歷史資料？", "zh").passed


def assert_quotable(source: Passage, joined: str, quote: str, question: str) -> None:
    """``joined`` is a sentence of ``source`` to narrate: a quote of one part locates to all of it,
    and a scene narrating it on that quote passes its check."""
    assert joined in [s for _, s in candidate_sentences([source], source.language)]
    assert locate_quote(quote, source) == joined
    scene = Scene(narration=joined, evidence=[Evidence(passage=1, quote=quote)])
    assert check_scene(scene, [source], question, source.language).passed


def test_a_list_under_its_label_is_one_sentence_that_can_answer():
    """The answer to "which conditions…?" is often a list: its label alone announces, its items
    alone are fragments, together they are a sentence to quote and narrate."""
    criteria = passage(
        "透過四大買賣點來判斷是否要買賣股票。四個買賣點分別為：\n\n"
        "   * 量大收紅 / 量大收黑\n   * 量縮價不跌 / 量縮價跌\n   * 三日均價由下往上 / 三日均價由上往下\n\n"
        "使用範例如下::\n\n   >>> bfp = twstock.BestFourPoint(stock)\n",
        "zh",
    )
    joined = (
        "四個買賣點分別為：量大收紅 / 量大收黑、量縮價不跌 / 量縮價跌、三日均價由下往上 / 三日均價由上往下。"
    )
    assert [s for _, s in candidate_sentences([criteria], "zh")] == [
        "透過四大買賣點來判斷是否要買賣股票。",
        joined,
    ]
    # A quote of one item, or of the label and the first items, is evidence: the whole list.
    assert_quotable(criteria, joined, "量縮價不跌 / 量縮價跌", "四大買賣點看哪些條件？")
    assert locate_quote("四個買賣點分別為：量大收紅、量大收黑", criteria) == joined

    # English; and items that are sentences of their own stay sentences.
    steps = passage(
        "The idiom has three steps:\n- decorate\n- sort\n- undecorate\n\nTwo facts matter:\n"
        "- The sort is stable, so records with equal keys keep the order they had before sorting.\n"
        "- The key function is called exactly once for each of the input records being sorted.\n"
    )
    assert [s for _, s in candidate_sentences([steps], "en")] == [
        "The idiom has three steps: decorate; sort; undecorate.",
        "- The sort is stable, so records with equal keys keep the order they had before sorting.",
        "- The key function is called exactly once for each of the input records being sorted.",
    ]


def test_a_line_of_code_under_its_label_is_one_sentence_that_can_answer():
    """ "How do I…?" is often answered by a command under the words that say what it does: the label
    alone announces, the code alone says nothing in words, together they are a sentence to quote
    and narrate (and the label's words let the question find the code)."""
    readme = passage(
        "```js\nconsole.log('Hello world');\n\n// 结束调试后，可移除掉\nvConsole.destroy();\n```\n\n"
        "```python\n# output:\n# 壹佰贰拾叁元整\n```\n",
        "zh",
    )
    joined = "结束调试后，可移除掉：vConsole.destroy();"
    assert_quotable(readme, joined, "vConsole.destroy();", "vConsole 測完了想把它拿掉，要呼叫什麼？")

    howto = passage(
        "Generating a key for the RSA algorithm is quite easy, all you have to do is the following:\n\n"
        "  openssl genrsa -des3 -out privkey.pem 2048\n\n"
        "For example, to sort the student data by *grade* using the DSU approach:\n\n"
        ">>> decorated = [(student.grade, i, student) for i, student in enumerate(student_objects)]\n"
        ">>> decorated.sort()\n>>> [student for grade, i, student in decorated]\n"
        ">>> assert len(decorated) == len(student_objects) and decorated[0][0] == 'A'\n\n"
        "The number 2048 is the size of the key, in bits.\n"
    )
    assert [s for _, s in candidate_sentences([howto], "en")] == [
        "Generating a key for the RSA algorithm is quite easy, all you have to do is the following: "
        "openssl genrsa -des3 -out privkey.pem 2048",
        # At most three lines of a program go with its label, while they are short to say.
        "For example, to sort the student data by *grade* using the DSU approach: decorated = "
        "[(student.grade, i, student) for i, student in enumerate(student_objects)] decorated.sort() "
        "[student for grade, i, student in decorated]",
        "The number 2048 is the size of the key, in bits.",
    ]
    # Prose that names a command is no line of code, and a label with too few words joins nothing.
    assert with_code_joined(["Run this:", "Call sorted(xs) to sort."]) == [
        "Run this:",
        "Call sorted(xs) to sort.",
    ]
    assert with_code_joined(["doctest::", ">>> sorted(xs)"]) == ["doctest::", ">>> sorted(xs)"]
    assert with_code_joined(["To rebuild the index:", "$ a()", "$ b()", "$ c()", "$ d()"]) == [
        "To rebuild the index: a() b() c()",
        "$ d()",
    ]
    long_line = "$ " + " ".join(["--option value"] * 20)
    assert with_code_joined(["To rebuild the index:", "$ a()", long_line]) == [
        "To rebuild the index: a()",
        long_line,
    ]
    # reST's directive between the label and its example is skipped; prompts are not said.
    assert with_code_joined(["To rebuild the index:", "doctest::", ">>> rebuild(index)"]) == [
        "To rebuild the index: rebuild(index)"
    ]
    assert with_code_joined(
        ["To print each one:", "code-block:: python", ">>> for x in xs:", "...     print(x)"]
    ) == ["To print each one: for x in xs: print(x)"]
    # Code is no label, not even code ending in a colon or commented out.
    loop = ["for student in sorted(students, key=lambda s: s.grade):", "    print(student.name)"]
    assert with_code_joined(loop) == loop
    assert with_code_joined(["# print(debug_info(x, y, z))", "run(x);"]) == [
        "# print(debug_info(x, y, z))",
        "run(x);",
    ]
    assert with_code_joined(["To sort a list in place:", "Call sorted(xs)."]) == [
        "To sort a list in place:",
        "Call sorted(xs).",
    ]


def test_a_sentence_is_said_when_half_its_words_and_more_than_half_its_numbers_and_terms_are():
    listed = "四個買賣點分別為：量大收紅、量縮價不跌、三日均價由下往上。"
    # Program output sharing one of the list's two numbers (三) does not say the list.
    assert not says("6223: Sell 量縮價跌, 三日均價小於六日均價", listed)
    # All its numbers (四, 三) are there, but hardly any of its words: the list is not said.
    assert not says("四大買賣點判斷。6223: Sell 量縮價跌, 三日均價小於六日均價。", listed)
    assert says("四個買賣點是量大收紅、量縮價不跌和三日均價由下往上。", listed)
    command = "openssl genrsa -des3 -out privkey.pem 2048"
    assert says("Run openssl genrsa -des3 -out privkey.pem for a protected key.", command)  # 3 of 4
    assert not says("Run openssl genrsa -des3 with 2048 bits.", command)  # 2 of 4: -out privkey.pem
    # Without numbers or terms: half of its content words.
    assert says("Oolong is brewed with very hot water.", "Oolong tea is brewed with hot water.")
    assert not says("Green tea wants cooler water.", "Oolong tea is brewed with hot water.")


def test_a_table_row_is_one_sentence_and_its_header_none():
    table = passage(
        "## 簡轉繁\n\n| 簡體字 | 可能繁體字 | 說明 | 例詞 |\n| --- | --- | --- | --- |\n"
        "| 干 | 幹 乾 干 榦 | 「干」本意爲盾牌，意義與武器有關。「乾」意義爲「水分少」。 | 干戈 乾燥 幹部 |\n"
        "| 发 | 發 髮 | 與毛髮有關用「髮」，其餘意義爲「發」。 | 發財 頭髮 |\n",
        "zh",
    )
    row = "干，幹 乾 干 榦，「干」本意爲盾牌，意義與武器有關。「乾」意義爲「水分少」，干戈 乾燥 幹部。"
    assert [s for _, s in candidate_sentences([table], "zh")] == [
        row,
        "发，發 髮，與毛髮有關用「髮」，其餘意義爲「發」，發財 頭髮。",
    ]
    # Split at its full stops, "乾燥 幹部" would be a bare row of words, said by no sentence.
    assert locate_quote("「乾」意義爲「水分少」。", table) == row
    scene = Scene(narration=readable(row), evidence=[Evidence(passage=1, quote="「乾」意義爲「水分少」")])
    assert check_scene(scene, [table], "「干燥」的繁體怎麼寫？", "zh").passed


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "How many bits should a new RSA key have, and how do I create one?",
            ["How many bits should a new RSA key have", "how do I create one?"],
        ),
        ("美國參議員一任是幾年？每個州有幾名參議員？", ["美國參議員一任是幾年？", "每個州有幾名參議員？"]),
        ("cn2an 轉得動「1百23」嗎？要開哪個模式？", ["cn2an 轉得動「1百23」嗎？", "要開哪個模式？"]),
        # A clause that only sets the scene asks nothing: one question.
        ("In PostgreSQL, how can I undo only the last updates?", []),
        ("查詢台股即時報價時，出錯時去哪裡看錯誤訊息？", []),
        ("How hot should the water be for oolong?", []),
        ("When I run pip install, which version do I get?", []),
        ("In a WHERE clause, can I use rank()?", []),  # an SQL keyword, not a second question
    ],
)
def test_a_question_that_asks_several_things_is_split_into_them(question, parts):
    assert question_parts(question) == parts


def test_an_empty_passage_has_no_sentences():
    assert candidate_sentences([passage("", "en")], "en") == []


def test_an_escaped_pipe_stays_inside_its_cell():
    # The loader escapes a "|" that a cell holds; split there, "a | b" would become two cells.
    assert table_row_sentence(r"| `a \| b` | pipes one command into another |") == (
        "`a | b`; pipes one command into another."
    )


def test_a_narration_that_announces_what_follows_is_not_an_answer():
    scene = Scene(
        narration="Oolong wants water between 90 and 95 degrees, brewed like this:",
        evidence=[Evidence(passage=1, quote="Oolong tea is best brewed with water between 90 and 95")],
    )
    assert "it ends with a colon" in " ".join(check_scene(scene, [TEA], "How hot for oolong?", "en").problems)


def test_every_sentence_offered_as_an_extractive_scene_passes_its_own_check():
    """Extractive scenes (a failed scene's fallback, the answer sentences, reviewed scripts built by
    the batch benchmark) are right by construction only if the check accepts them: over every
    document of the sample and evaluation knowledge bases, each candidate sentence must pass."""
    from pathlib import Path

    from ragreel.kb.chunking import chunk_document
    from ragreel.kb.loaders import is_supported, load_document
    from ragreel.settings import get_settings

    repo = Path(__file__).resolve().parent.parent
    files = [
        p
        for root in ("data/kb", "bench/eval/docs")
        for p in sorted((repo / root).rglob("*"))
        if is_supported(p)
    ]
    settings, checked, failures = get_settings(), 0, []
    for path in files:
        for chunk in chunk_document(load_document(path), settings):
            text = passage(chunk.text, chunk.language)
            for language in ("en", "zh"):
                for _, sentence in candidate_sentences([text], language):
                    checked += 1
                    scene = Scene(
                        narration=readable(sentence), evidence=[Evidence(passage=1, quote=sentence)]
                    )
                    result = check_scene(scene, [text], "完全無關的問題 unrelated question?", language)
                    if not result.sound:
                        failures.append((path.name, sentence[:80], result.problems))
    assert checked > 1000 and failures == []


def test_a_command_is_ranked_with_the_name_of_its_section():
    """A command says nothing in words; its section's name says what it does."""
    command = "openssl req -new -x509 -key privkey.pem -out cacert.pem -days 1095"
    certificates = passage(f"You can create one yourself.\n\n{command}").model_copy(
        update={"heading": "Certificates > Creating a self-signed test certificate"}
    )
    assert with_its_section(command, certificates) == f"Creating a self-signed test certificate: {command}"
    assert with_its_section("You can create one yourself.", certificates) == "You can create one yourself."
    assert with_its_section(command, passage(command)) == command  # no section, nothing to add
    labelled = f"You can create one yourself with the following command: {command}"
    assert with_its_section(labelled, certificates) == labelled  # its own words say what it does
    code = "d = {'grade': 1}"
    assert with_its_section(code, certificates) == f"Creating a self-signed test certificate: {code}"
