"""The evidence check: is a scene's narration carried by the sentences it quotes?

Pure text work, tested without a model. A scene passes when

- its quote is really in a passage (compared after normalising width, case, spacing, punctuation
  and Simplified/Traditional characters); the quote is then replaced by the passage's own
  sentence(s), so the evidence kept is always the source's exact words;
- every number in the narration (Arabic digits, Chinese numerals, English number words, compared
  by value: 二十 = 20 = twenty) and every quoted or code-marked term appears in that evidence;
- it answers instead of restating the question, and says what the sources say instead of talking
  about them ("the passage lists", "詳細描述了");
- it is in the answer's language.

:func:`check_scene` returns the problems in words, which are sent back to the model once as the
reason to rewrite the scene; :func:`extractive_scene` is the fallback that is right by construction.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ragreel.schemas import Evidence, Passage, Scene
from ragreel.text import HAN_CLASS, SIMPLIFIED, convert_chinese, detect_language, has_han, split_sentences

# A quote this close to one of the passage's sentences (difflib ratio, normalised) is that sentence:
# small models drop a word or change punctuation when copying.
QUOTE_MATCH = 0.8
# A sentence whose content words (Chinese: character pairs) are this much the question's restates it.
RESTATED = 0.9
MIN_QUOTE_CHARS = 6
# Sentences of a cited passage that may join a scene's evidence to carry a number or term it states.
MAX_ADDED_SENTENCES = 2

# --- normalising for comparison ----------------------------------------------------------------


def normalise(text: str) -> str:
    """Text reduced for comparing quotes: NFKC, one Chinese script, lower case, letters and digits only."""
    text = unicodedata.normalize("NFKC", text)
    if has_han(text):
        text = convert_chinese(text, SIMPLIFIED)
    return re.sub(r"[\W_]+", "", text.lower())


def _passage_sentences(passage: Passage) -> list[str]:
    """The passage's sentences: a row of a table is one (see :func:`table_row_sentence`), and so is a
    list under its label (see :func:`with_lists_joined`) and a line of code under the words that say
    what it does (see :func:`with_code_joined`)."""
    return list(_sentences_of(passage.text))


# Every quote located and every scene checked reads the same few passages again.
@functools.lru_cache(maxsize=256)
def _sentences_of(text: str) -> tuple[str, ...]:
    sentences: list[str] = []
    prose: list[str] = []
    for line, is_row in lines_with_table_rows(text):
        if not is_row:
            prose.append(line)
            continue
        sentences += split_sentences("\n".join(prose))
        prose = []
        sentences.append(line)
    sentences += split_sentences("\n".join(prose))
    return tuple(with_code_joined(with_lists_joined([s for s in sentences if any(ch.isalnum() for ch in s)])))


def lines_with_table_rows(text: str) -> Iterator[tuple[str, bool]]:
    """The lines of ``text``, each with whether it is a Markdown table row; a row comes as its
    sentence (see :func:`table_row_sentence`), and a table's header row and rule line are left out:
    the header names the columns, nothing to say alone."""
    lines = text.splitlines()
    for line, below in itertools.zip_longest(lines, lines[1:], fillvalue=""):
        if not line.lstrip().startswith("|"):
            yield line, False
        elif not (TABLE_RULE.fullmatch(line) or TABLE_RULE.fullmatch(below)):
            yield table_row_sentence(line), True


TABLE_RULE = re.compile(r"\s*\|[\s:|-]*-[\s:|-]*")  # | --- | :-: |


def table_row_sentence(line: str) -> str:
    """A Markdown table row as one sentence, its cells in order ("干，幹 乾 干 榦，「干」本意爲盾牌…，
    干戈 干涉 … 幹部。"): split at its full stops, a row's words would lose the word they describe.
    A rule line ("| --- | :-: |") gives ''."""
    # The loader writes a "|" inside a cell as "\\|"; only an unescaped one divides cells.
    cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
    cells = [cell.rstrip("。.;；") for cell in cells if cell]
    if not any(re.search(r"\w", cell) for cell in cells):
        return ""
    if has_han("".join(cells)):
        return "，".join(cells) + "。"  # not "；": it ends a Chinese sentence, and "干；" alone says nothing
    return "; ".join(cells) + "."


_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)、])\s+")
# A list is one sentence only while it is a list of short fragments: an item that ends in a full
# stop or is as long as this (weight, see _weight) is a sentence of its own, and so is every item
# of a list with such an item or with more than MAX_LIST_ITEMS.
MAX_LIST_ITEM_WEIGHT = 40
MAX_LIST_ITEMS = 10


def with_lists_joined(sentences: list[str]) -> list[str]:
    """``sentences`` with a label ending in a colon and the short list items under it joined into one
    sentence ("四個買賣點分別為：量大收紅／量大收黑、量縮價不跌／量縮價跌。"): the label alone
    announces and the items alone are fragments, so neither can be narrated, while together they
    are often the very answer ("which conditions…?"). The joined sentence still normalises to the
    passage's own words, so it is found as a quote."""
    joined: list[str] = []
    index = 0
    while index < len(sentences):
        label = sentences[index]
        end = index + 1
        while end < len(sentences) and _LIST_ITEM.match(sentences[end]):
            end += 1
        listed = sentences[index + 1 : end]
        items = [_LIST_ITEM.sub("", item).strip().rstrip(",;，；、") for item in listed]
        is_list = (
            re.search(r"[:：]$", label)
            and 2 <= len(items) <= MAX_LIST_ITEMS
            and all(0 < _weight(item) < MAX_LIST_ITEM_WEIGHT for item in items)
            and not any(re.search(r"[.!?。！？]$", item) for item in items)
        )
        if not is_list:
            joined.append(label)
            index += 1
            continue
        label = re.sub(r"[:：]+$", "", label)
        if has_han(label + items[0]):
            joined.append(f"{label}：{'、'.join(items)}。")
        else:
            joined.append(f"{label}: {'; '.join(items)}.")
        index = end
    return joined


# A comment that says what the code under it does ("# 在 rmb 模式下…", "// 结束调试后，可移除掉").
_CODE_COMMENT = re.compile(r"^\s*(?:#|//|--)\s+")
_TRAILING_COMMENT = re.compile(r"\s(?:#|//)\s.*$")
# A line of a program or a shell: a prompt, a call, an option, a statement's semicolon.
_CODE_LINE = re.compile(r"^\s*(?:>>>|\.\.\.|\$)\s|[A-Za-z_][\w.]*\(|(?:^|\s)--?[A-Za-z]|;\s*$")
_PROMPT = re.compile(r"^\s*(?:>>>|\.\.\.|\$)\s+")  # an interpreter's or a shell's
_STRING_LITERAL = re.compile(r"\"[^\"]*\"|'[^']*'")
# reST's directive between a sentence and its example (".. doctest::"): nothing to say.
_DIRECTIVE = re.compile(r"(?:\.\.\s*)?[a-z][\w-]*::(?:\s+\S+)?")  # doctest::, code-block:: python
# At most this many lines of code go with their label, as long as together they are this short
# (weight, see _weight): a whole program is read on screen, not said.
MAX_JOINED_CODE_LINES = 3
MAX_JOINED_CODE_WEIGHT = 56


def with_code_joined(sentences: list[str]) -> list[str]:
    """``sentences`` with a label (ending in a colon, or a code comment) and the short lines of code
    under it joined into one sentence ("// 结束调试后，可移除掉：vConsole.destroy();", "You can use the
    following command to generate an X25519 key: openssl genpkey -algorithm X25519 -out xkey.pem"):
    the label alone announces and the code alone says nothing in words, while together they answer
    "how do I…?", and the label's words let the question find the code. Like a joined list, the
    sentence normalises to the passage's own words, so it is found as a quote."""
    joined: list[str] = []
    index = 0
    while index < len(sentences):
        label = sentences[index]
        start = index + 1
        if start < len(sentences) and _DIRECTIVE.fullmatch(sentences[start].strip()):
            start += 1
        code = _code_lines_from(sentences, start)
        words = _CODE_COMMENT.sub("", label)
        is_label = (re.search(r"[:：]$", label) or _CODE_COMMENT.match(label)) and not _is_code_line(words)
        if not code or not is_label or _weight(readable(words)) < 6:
            joined.append(label)
            index += 1
            continue
        label = re.sub(r"[:：]+$", "", words).strip()
        said = " ".join(_PROMPT.sub("", line).strip() for line in code)
        joined.append(f"{label}：{said}" if has_han(label) else f"{label}: {said}")
        index = start + len(code)
    return joined


def _code_lines_from(sentences: list[str], start: int) -> list[str]:
    """The lines of code from ``sentences[start]`` on, as many as go with a label."""
    lines: list[str] = []
    weight = 0
    for line in sentences[start : start + MAX_JOINED_CODE_LINES]:
        if not _is_code_line(line) or weight + _weight(line) > MAX_JOINED_CODE_WEIGHT:
            break
        lines.append(line)
        weight += _weight(line)
    return lines


def _is_code_line(line: str) -> bool:
    """Whether ``line`` is a line of code or a shell command, not prose that mentions some (a line
    of code does not end in a full stop: "Call sorted(xs)." is prose)."""
    words = _TRAILING_COMMENT.sub("", _STRING_LITERAL.sub('""', line)).rstrip()
    if has_han(words) or re.search(r"(?<!\.)[.!?]$", words) or _CODE_COMMENT.match(line):
        return False
    return bool(_CODE_LINE.search(words) or _CODE_STATEMENT.match(line.strip()))


def locate_quote(quote: str, passage: Passage) -> str | None:
    """The passage's own sentence(s) that ``quote`` copies, or None when it copies none of them.

    A quote inside one sentence gives that sentence; a quote running over several gives them all;
    a near copy (a word dropped or changed) gives the sentence it is closest to.
    """
    wanted = normalise(quote)
    if len(wanted) < MIN_QUOTE_CHARS:
        return None
    sentences = _passage_sentences(passage)
    keys = [normalise(s) for s in sentences]
    for sentence, key in zip(sentences, keys, strict=True):
        if wanted in key:
            return sentence
    # A quote running over several sentences: the sentences its span touches.
    start = "".join(keys).find(wanted)
    if start >= 0:
        touched, offset = [], 0
        for index, key in enumerate(keys):
            if offset < start + len(wanted) and start < offset + len(key):
                touched.append(index)
            offset += len(key)
        return _join(sentences[touched[0] : touched[-1] + 1])
    # A near copy of one sentence, or of two or three in a row.
    best, best_ratio = None, 0.0
    for size in (1, 2, 3):
        for first in range(len(sentences) - size + 1):
            key = "".join(keys[first : first + size])
            ratio = difflib.SequenceMatcher(None, wanted, key, autojunk=False).ratio()
            if ratio > best_ratio:
                best, best_ratio = _join(sentences[first : first + size]), ratio
    return best if best_ratio >= QUOTE_MATCH else None


# --- numbers ---------------------------------------------------------------------------------------

# Digits inside an identifier (X25519, -des3, utf8) are part of a term, not a number.
_ARABIC = re.compile(r"(?<![A-Za-z0-9_.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![A-Za-z0-9_])")
_ZH_NUMERAL_CHARS = "零〇一二兩两三四五六七八九十百千萬万億亿"
_ZH_NUMERAL = re.compile(rf"(百分之)?([{_ZH_NUMERAL_CHARS}]+)(點[零〇一二三四五六七八九]+)?")
# One lone numeral character is a number only before a measure word: 三天, 十年 (not 一些, 十分).
_ZH_MEASURE = "天日年月週周次個件項條款歲時分秒元倍種位名人台臺頁章節步"
_EN_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "hundred": 100, "thousand": 1000, "million": 1000000, "twice": 2, "half": 0.5,
}  # fmt: skip
_EN_WORD = re.compile(r"\b(" + "|".join(_EN_WORDS) + r")\b", re.IGNORECASE)


def _value(text: str) -> str | None:
    try:
        number = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return format(number.normalize(), "f")


def _zh_value(numeral: str) -> str | None:
    import cn2an  # light, but only the checks need it

    try:
        return _value(str(cn2an.cn2an(convert_chinese(numeral, SIMPLIFIED), "normal")))
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def numbers_in(text: str, *, lenient: bool = False) -> set[str]:
    """The numbers ``text`` states, as canonical decimal strings.

    ``lenient`` is for evidence: every numeral counts there (一 and 'one' included), so that a
    narration's "1" or "twenty" is matched by a quote's "一" or "20".
    """
    text = unicodedata.normalize("NFKC", text)
    values = {_value(m[1] + (m[2] or "")) for m in _ARABIC.finditer(text)}
    for match in _ZH_NUMERAL.finditer(text):
        percent, numeral, decimal = match.groups()
        after = text[match.end() : match.end() + 1]
        lone = not lenient and not percent and not decimal and len(numeral) == 1
        if lone and (numeral == "一" or after not in _ZH_MEASURE or numeral + after == "十分"):
            continue
        value = _zh_value(numeral + (decimal or ""))
        if value is not None:
            values.add(value)
            if percent:
                values.add(_value(str(Decimal(value) / 100)))
    for match in _EN_WORD.finditer(text):
        values.add(_value(str(_EN_WORDS[match[1].lower()])))
    if lenient:
        if re.search(r"\b(?:one|a single)\b", text, re.IGNORECASE):
            values.add("1")
        # "50%" is also 0.5, and a count written as a percentage of 100 is the same value.
        for match in re.finditer(r"(\d+(?:\.\d+)?)\s?%", text):
            values.add(_value(str(Decimal(match[1]) / 100)))
    values.discard(None)
    return values  # type: ignore[return-value]


# --- terms, restating, talking about the sources ---------------------------------------------------

_TERM = re.compile(
    # (never across sentence marks: an unbalanced backtick must not turn a sentence into a "term")
    r"`([^`\n。，、；：！？]{1,60})`|\"([^\"\n]{2,40})\"|“([^”\n]{2,40})”|「([^」\n]{1,40})」|『([^』\n]{1,40})』"
)
# Code-like words: dunders, snake_case, dotted names, calls, options, file names.
_CODE_WORD = re.compile(
    r"(?<![\w.-])(?:__\w+__|\w+_\w+|[A-Za-z_]\w*(?:\.\w+)+\(?\)?|\w+\(\)|--?[A-Za-z][\w-]*|\.[A-Za-z_][\w-]*)(?![\w])"
)


def terms_in(text: str) -> list[str]:
    """Terms the narration marks as exact: quoted or in backticks, and code-like words."""
    terms = [next(g for g in m.groups() if g) for m in _TERM.finditer(text)]
    terms += [m[0] for m in _CODE_WORD.finditer(text)]
    return [t for t in dict.fromkeys(terms) if normalise(t)]


_ABOUT_SOURCES_EN = re.compile(
    r"\b(?:passages?|excerpts?)\b"
    r"|\b(?:the|this|these|that|those|first|second|third|above|provided|given|following|another|other)\s+"
    r"(?:documents?|sections?|sources?|context|texts?|articles?)\s+(?:also\s+)?"
    r"(?:says?|states?|lists?|describes?|explains?|mentions?|provides?|shows?|notes?|covers?|discusses?"
    r"|gives?|contains?|does not|doesn't|talks?|refers?|explores?|introduces?|presents?|outlines?|focuses)\b"
    r"|\b(?:according to|based on|as (?:stated|described|mentioned|explained) in)\s+the\s+"
    r"(?:provided\s+|given\s+)?(?:documents?|sources?|texts?|context|sections?)\b"
    r"|\bis (?:described|explained|mentioned|discussed|covered|detailed|listed) in\b"
    r"|\b(?:is|are) in the (?:documents?|sources?|texts?|context)\b"
    # "… is the author of this document": what the source is, not what it says ("in this text field" is
    # not about it)
    r"|\b(?:authors?|title|purpose|scope)\s+of\s+this\s+(?:documents?|texts?|articles?|passages?)\b",
    re.IGNORECASE,
)
# What a Chinese narration calls its sources: the documents, and a stretch of their text.
_ZH_SOURCES = "資料|资料|段落|文件|文章|章節|章节|來源|来源|文本"
_ZH_TEXT_SPANS = "說明|说明|文字|內容|内容|敘述|叙述"
_ABOUT_SOURCES_ZH = re.compile(
    r"(?:這|该|該|此|本|上述|以上|第.|另一|其他)(?:份|篇|段|節|则|則|個)?(?:" + _ZH_SOURCES + ")"
    # "這段說明提到…", "這段文字指出…": the local model's favourite opening in a Chinese answer
    r"|(?:這|该|該|此|上述|以上)(?:段|篇|則|则)(?:" + _ZH_TEXT_SPANS + ")"
    r"|(?:文中|文内|文內)(?:提到|指出|說明|说明|描述|顯示|显示)"
    r"|(?:資料|资料|段落|文章|來源|来源)(?:中|裡|里|裡面|里面|指出|提到|說明|说明|顯示|显示|描述|列出|介紹|介绍)"
    r"|(?:根據|根据|依據|依据)(?:資料|资料|段落|文件|來源|来源|原文)"
    r"|詳細(?:描述|說明|介紹)|详细(?:描述|说明|介绍)|(?:描述|介紹|介绍)了"
    r"|在.{1,16}(?:一節|一节|章節|章节|部分)(?:中|裡|里)"
)

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)

_STOPWORD_TEXT = (
    "the a an and or but of to in on at for is are was were be been do does did can could should would "
    "will i you it this that what which who how why when where there my your if so as by with from "
    "any some about into than then them they their its"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _content_units(text: str) -> set[str]:
    text = unicodedata.normalize("NFKC", text)
    units = {w for w in re.findall(r"[a-z0-9][a-z0-9_'-]*", text.lower()) if w not in _STOPWORDS}
    for run in re.findall(f"[{HAN_CLASS}]+", convert_chinese(text, SIMPLIFIED)):
        if len(run) == 1:  # a character standing alone (「里」) is a unit of its own
            units.add(run)
        units.update(run[i : i + 2] for i in range(len(run) - 1))
    return units


# A scene sharing this much of its content with an earlier one, and no new number, repeats it.
REPEAT_SHARE = 0.75


def repeats(narration: str, earlier: str) -> bool:
    """Whether ``narration`` says nothing that ``earlier`` did not: no new number, and at least
    :data:`REPEAT_SHARE` of its content words (Chinese: character pairs) already there."""
    if normalise(narration) == normalise(earlier):
        return True
    if numbers_in(narration) - numbers_in(earlier, lenient=True):
        return False
    units = _content_units(narration)
    return bool(units) and len(units & _content_units(earlier)) >= REPEAT_SHARE * len(units)


def main_evidence(narration: str, evidence: list[Evidence]) -> Evidence:
    """The quote that says most of what ``narration`` says: its numbers first, then its words.

    A scene may cite background before the sentence holding its fact; a slide shows this one.
    """
    numbers, units = numbers_in(narration), _content_units(narration)

    def support(item: Evidence) -> tuple[int, int]:
        return (
            len(numbers & numbers_in(item.quote, lenient=True)),
            len(units & _content_units(item.quote)),
        )

    return max(evidence, key=support)  # the first of equals: the model's own order


def normalise_spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def restates_question(sentence: str, question: str) -> bool:
    """A question back, a piece of the question copied, or a sentence that adds next to nothing
    to the question's own words (a new number counts as something: "It needs 2048 bits")."""
    if re.search(r"[?？]\s*[\"'”」』)]*$", sentence.strip()):
        return True
    key = normalise(sentence)
    if not key or key in normalise(question):
        return True
    if numbers_in(sentence) - numbers_in(question, lenient=True):
        return False
    units = _content_units(sentence)
    return bool(units) and len(units & _content_units(question)) / len(units) >= RESTATED


def question_overlap(question: str, passages: list[Passage]) -> float:
    """The share of the question's content words (Chinese: character pairs) found in the passages."""
    asked = _content_units(question)
    if not asked:
        return 0.0
    found: set[str] = set()
    for passage in passages:
        found |= asked & _content_units(passage.text)
    return len(found) / len(asked)


def talks_about_sources(text: str) -> bool:
    return bool(_ABOUT_SOURCES_EN.search(text) or _ABOUT_SOURCES_ZH.search(text))


_SOURCE_NOUN_EN = (
    r"(?:(?:the\s+)?(?:(?:first|second|third|provided|given|above|same)\s+)?"
    r"(?:passages?|documents?|sources?|texts?|context|sections?|excerpts?)(?:\s*\d+)?|\[\d+\])"
)
# Only lead-ins after which a whole statement follows: "The passage states that X" gives "X", while
# "The passage describes the water temperature" stays whole (and fails the check).
_LEAD_IN_EN = re.compile(
    rf"(?:according to|based on|as (?:stated|described|mentioned|explained|noted|shown) in|in)\s+{_SOURCE_NOUN_EN}\s*,\s*"
    rf"|{_SOURCE_NOUN_EN}\s+(?:also\s+)?(?:states?|says?|explains?|mentions?|notes?|indicates?|shows?"
    r"|clarifies|specifies|confirms?)(?:\s+that\s+|\s*[:,]\s*)",
    re.IGNORECASE,
)
_LEAD_IN_ZH = re.compile(
    r"(?:根據|根据|依據|依据|按照)?(?:這|这|該|该|此|本|上述|以上|第.)?\s*\d*\s*(?:份|篇|段|節|节|則|则|個|个)?"
    r"(?:" + _ZH_SOURCES + "|" + _ZH_TEXT_SPANS + r"|原文|文中|文內|文内|[\[【［]\d+[\]】］])"
    r"\s*\d*(?:中|裡|里|裡面|里面)?"
    # 說明/描述 take an object ("說明了如何安裝"): a lead-in only when a comma or colon follows them.
    r"(?:(?:所|中)?(?:提到|指出|顯示|显示|表示|寫道|写道|記載|记载|提及|談到|谈到|所述|所說|所说|說(?!明)|说(?!明))"
    r"(?:了|的是)?\s*[，,：:]?|(?:說明|说明|描述)?\s*[，,：:])\s*"
)


def without_source_lead_ins(text: str) -> str:
    """``text`` without the lead-ins that open a sentence by pointing at the sources ("According to
    the passage, ...", "這段說明提到，..."): what follows them is the statement to check and say.
    Small models open most sentences this way; the statement itself is often right."""
    if not (_LEAD_IN_EN.search(text) or _LEAD_IN_ZH.search(text)):
        return text
    pieces = []
    for sentence in split_sentences(text) or [text]:
        stripped = sentence
        for lead_in in (_LEAD_IN_EN, _LEAD_IN_ZH):
            found = lead_in.match(stripped)
            stripped = stripped[found.end() :] if found else stripped
        if stripped is not sentence and stripped and not has_han(stripped[0]):
            # "According to the passage, the library ..." -> "The library ...", but never an identifier.
            first = re.match(r"[a-z]+(?=[\s,;]|$)", stripped)
            stripped = stripped[0].upper() + stripped[1:] if first else stripped
        if any(ch.isalnum() for ch in stripped):
            pieces.append(stripped)
    return _join(pieces) if pieces else text


# --- the check ---------------------------------------------------------------------------------


@dataclass
class SceneCheck:
    """A scene after the check: evidence snapped to the passages' words, what is wrong with it
    (``problems``: it says what its evidence does not) and what it leaves out while right
    (``left_out``: the numbers and terms of its quote it drops; ``no_yes_no``: the first scene of
    a yes-or-no answer that does not begin with it)."""

    scene: Scene
    problems: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    no_yes_no: bool = False

    @property
    def passed(self) -> bool:
        return self.sound and not self.left_out and not self.no_yes_no

    @property
    def sound(self) -> bool:
        """Nothing in it is wrong, whatever it leaves out."""
        return not self.problems

    @property
    def reasons(self) -> list[str]:
        """Everything to fix, in words (sent back to the model)."""
        reasons = list(self.problems)
        if self.left_out:
            reasons.append(f"the narration leaves out what its quote states: {', '.join(self.left_out)}")
        if self.no_yes_no:
            reasons.append(
                'this is a yes-or-no question: begin the first narration with the answer ("Yes" or "No"; 是 or 不)'
            )
        return reasons


def snap_evidence(evidence: list[Evidence], passages: list[Passage]) -> tuple[list[Evidence], list[str]]:
    """Each quote replaced by the sentence(s) it copies, from the passage it names or, failing that,
    from another one (small models cite the wrong number); problems for quotes found nowhere."""
    snapped, problems = [], []
    for item in evidence:
        order = list(range(len(passages)))
        if 1 <= item.passage <= len(passages):
            order.insert(0, order.pop(item.passage - 1))
        for index in order:
            found = locate_quote(item.quote, passages[index])
            if found:
                snapped.append(Evidence(passage=index + 1, quote=found))
                break
        else:
            problems.append(f"the quote {_short(item.quote)} is not a sentence of any passage")
    return list({(e.passage, e.quote): e for e in snapped}.values()), problems


def complete_evidence(narration: str, evidence: list[Evidence], passages: list[Passage]) -> list[Evidence]:
    """The evidence plus the passage sentences that hold a number or term of the narration the
    quotes lack (a command on the line after the sentence quoted, say): every addition is a whole
    sentence of a passage, so the evidence stays the source's words."""
    quoted = " ".join(e.quote for e in evidence)
    numbers = numbers_in(narration) - numbers_in(quoted, lenient=True)
    terms = [t for t in terms_in(narration) if normalise(t) not in normalise(quoted)]
    if not numbers and not terms:
        return evidence
    completed = list(evidence)
    cited = list(dict.fromkeys(e.passage for e in evidence))
    others = [n for n in range(1, len(passages) + 1) if n not in cited]
    # Cited passages may supply a number or a term; another passage only a code-like term, which is
    # specific enough not to be found there by chance (a bare "2" is).
    for number, terms_only in [(n, False) for n in cited] + [(n, True) for n in others]:
        for sentence in _passage_sentences(passages[number - 1]):
            if len(completed) >= len(evidence) + MAX_ADDED_SENTENCES:
                return completed
            if any(sentence in e.quote for e in completed):
                continue
            adds_term = [t for t in terms if normalise(t) in normalise(sentence)]
            adds_number = (
                set() if terms_only and not adds_term else numbers & numbers_in(sentence, lenient=True)
            )
            if adds_number or adds_term:
                completed.append(Evidence(passage=number, quote=sentence))
                numbers -= numbers_in(sentence, lenient=True)
                terms = [t for t in terms if t not in adds_term]
            if not numbers and not terms:
                return completed
    return completed


def check_scene(
    scene: Scene, passages: list[Passage], question: str, language: str, *, first: bool = False
) -> SceneCheck:
    """Check ``scene`` (evidence numbered by passage, 1-based) against ``passages``; see the module
    doc. The ``first`` scene of an answer to a yes-or-no question must begin with its yes or no."""
    evidence, problems = snap_evidence(scene.evidence, passages)
    dropped = left_out(scene.narration, evidence[0].quote) if evidence else []
    no_yes_no = (
        first and asks_yes_or_no(question, language) and not begins_yes_or_no(scene.narration, language)
    )
    narration = normalise_spaces(scene.narration)
    if not narration:
        problems.append("the narration is empty")
    elif detect_language(narration) != language:
        problems.append(
            "the narration is not in " + ("Traditional Chinese" if language == "zh" else "English")
        )
    if evidence:
        evidence = complete_evidence(narration, evidence, passages)
        quoted = " ".join(e.quote for e in evidence)
        missing = sorted(numbers_in(narration) - numbers_in(quoted, lenient=True), key=len)
        if missing:
            problems.append(f"the number(s) {', '.join(missing)} in the narration are not in its quote")
        # A name may come from the title or section of the passage quoted ("出自《出師表》"), or be the
        # question's own term said back in the answer.
        named = (
            question
            + " "
            + " ".join(
                f"{passages[n - 1].title} {passages[n - 1].heading or ''}"
                for n in dict.fromkeys(e.passage for e in evidence)
            )
        )
        quoted_key = normalise(quoted + named)
        absent = [t for t in terms_in(narration) if normalise(t) not in quoted_key]
        if absent:
            problems.append(f"the term(s) {', '.join(absent)} are not in its quote")
        # Against the whole passage, not the quote: a small model often quotes one sentence and says
        # the next one (OpenCC's list of word classes quoted, "語義差異…誤轉換" said).
        cited = " ".join(passages[n - 1].text for n in dict.fromkeys(e.passage for e in evidence))
        invented = unsupported(narration, f"{cited} {named}")
        if invented:
            problems.append(
                f"it says what its passage does not ({', '.join(invented[:6])}): say only what the passage says"
            )
        if language == "zh":  # English inside Chinese narration: the sources' own words, or invented
            known = quoted_key
            foreign = [
                w for w in dict.fromkeys(re.findall(r"[A-Za-z]{2,}", narration)) if normalise(w) not in known
            ]
            if foreign:
                problems.append(f"the English word(s) {', '.join(foreign)} are not in its quote")
    elif not problems:
        problems.append("it quotes no passage")
    sentences = split_sentences(narration)
    if any(restates_question(s, question) for s in sentences):
        problems.append("it repeats the question instead of answering it")
    if _URL.search(narration):
        problems.append("it narrates a web address, which cannot be said aloud")
    if re.search(r"[:：][\s\"'”」』]*$", narration):
        problems.append("it ends with a colon: say what follows it instead of announcing it")
    if talks_about_sources(narration) or talks_about_sources(scene.key_point):
        problems.append("it talks about the passages instead of saying what they say")
    checked = scene.model_copy(update={"narration": narration, "evidence": evidence or scene.evidence})
    return SceneCheck(checked, problems, dropped, no_yes_no)


# A narration must share at least this much of its content (words, Chinese character pairs) with
# the passages it quotes, the question and their titles: below it, a small model's scene says what
# no source does ("干部是中間人", "下面是一些示例"). A Chinese narration passes too while it keeps
# MIN_CHARACTER_SUPPORT of its characters: a paraphrase of formal text ("每一年加給一日" said
# "每年多一天") keeps the characters, not the pairs. Set on the 17 Chinese model scenes of
# `python -m bench.answer_eval --limit 10` measured against their quotes: the 5 below both were
# invented or empty; the closest above was a true paraphrase of code ("twstock 模組中提供了 Stock 類":
# pairs 0.35, characters 0.65). Against the quote alone, a true scene that quotes one sentence and
# says the next was refused too (zh accuracy 0.70 -> 0.50 on that sample).
MIN_SUPPORT = 0.3
MIN_CHARACTER_SUPPORT = 0.6


def unsupported(narration: str, source: str) -> list[str]:
    """The words (Chinese: character pairs) of ``narration`` that ``source`` lacks, when it says too
    little of the source's own words (see :data:`MIN_SUPPORT`); else []. English words are compared
    without their endings ("encodes" is "encode")."""
    said, known = _support_units(narration), _support_units(source)
    missing = [unit for stem, unit in said.items() if stem not in known]
    if not said or len(said) - len(missing) >= MIN_SUPPORT * len(said):
        return []
    characters = set(re.findall(f"[{HAN_CLASS}]", convert_chinese(narration, SIMPLIFIED)))
    if characters:
        known_characters = set(convert_chinese(source, SIMPLIFIED))
        if len(characters & known_characters) >= MIN_CHARACTER_SUPPORT * len(characters):
            return []
    return missing


def _support_units(text: str) -> dict[str, str]:
    """The content units of ``text`` by their stem."""
    units: dict[str, str] = {}
    for unit in sorted(_content_units(text)):
        units.setdefault(_stem(unit), unit)
    return units


def _stem(unit: str) -> str:
    if not unit.isascii():
        return unit
    stem = re.sub(r"(?:ing|ed|es|e|(?<!s)s|ly)$", "", unit)  # "classes" is "class", which stays
    return stem if len(stem) >= 3 else unit


def left_out(narration: str, quote: str) -> list[str]:
    """The numbers and code-like terms of ``quote`` missing from ``narration``, when it keeps fewer
    than half of them: a small model's paraphrase of "use genrsa -des3 ... 2048" as "create a
    protected key" is true and answers nothing."""
    missing, total = _unsaid(narration, quote)
    return missing if 2 * (total - len(missing)) < total else []


def _unsaid(narration: str, quote: str) -> tuple[list[str], int]:
    """The numbers and code-like terms of ``quote`` that ``narration`` does not say, and how many it has."""
    quote = readable(quote)  # a web address is not a term to say
    numbers = sorted(numbers_in(quote), key=lambda n: (len(n), n))
    terms = list(dict.fromkeys(m[0] for m in _CODE_WORD.finditer(quote)))
    said_numbers, said = numbers_in(narration, lenient=True), normalise(narration)
    missing = [n for n in numbers if n not in said_numbers] + [t for t in terms if normalise(t) not in said]
    return missing, len(numbers) + len(terms)


_YES_NO_EN = re.compile(
    r"^\W*(?:[a-z0-9 ,'.-]{0,80}[,:;]\s*)?(?:do|does|did|is|are|was|were|can|could|should|will|would|must|may|has|have)\b",
    re.IGNORECASE,
)
_YES_NO_ZH = re.compile(r"(?:嗎|吗|是否|是不是|能不能|可不可以|會不會|会不会|要不要|有沒有|有没有)")
# What the question asks for besides the yes or no: "..., and which mode?" asks for a name too.
_WH = re.compile(
    # Not an SQL keyword in capitals ("in a WHERE clause").
    r"\b(?:[Ww]h(?:at|ich|o|om|en|ere|y)|[Hh]ow)\b|什麼|什么|哪|怎麼|怎么|如何|為什麼|为什么|幾|几|多少|多久"
)
_YES_EN = re.compile(r"^\W*(?:yes|no)\b", re.IGNORECASE)
_YES_ZH = re.compile(r"^\W*(?:是|對|对|會|会|可以|能|要|需要|有|不|沒|没|否|別|别)")


def asks_yes_or_no(question: str, language: str) -> bool:
    """Whether ``question`` is answered by a yes or a no (and nothing else it asks comes first)."""
    first = re.split(r"(?<=[?？])", question.strip())[0]
    first = re.split(r"(?<=[.!;。！；])\s+|(?<=[。！；])", first)[-1]  # the sentence that asks
    if language == "zh":
        return bool(_YES_NO_ZH.search(first)) and not _WH.search(first)
    return bool(_YES_NO_EN.search(first)) and not _WH.search(first.split(",")[-1])


# "When I run pip install, which version…?": the clause before the question only sets the scene.
_SETTING_CLAUSE = re.compile(
    r"(?:when|where|if|once|after|before|while|since)\b(?!.*[?？]\s*$)", re.IGNORECASE
)


def question_parts(question: str) -> list[str]:
    """The questions that ``question`` asks when it asks more than one ("How many bits…, and how do I
    create one…?" → "How many bits…", "how do I create one…?"); [] when it asks one. The clauses
    that only set the scene ("In PostgreSQL,", "查詢台股即時報價時，") are left out."""
    clauses = [
        c.strip() for c in re.split(r"(?<=[?？])|[,;，；]\s*(?:and\s+)?|\s+and\s+", question) if c.strip()
    ]
    asking = [
        c
        for c in clauses
        if (_WH.search(c) or _YES_NO_ZH.search(c) or _YES_NO_EN.match(c)) and not _SETTING_CLAUSE.match(c)
    ]
    return asking if len(asking) > 1 else []


def begins_yes_or_no(narration: str, language: str) -> bool:
    return bool((_YES_ZH if language == "zh" else _YES_EN).match(narration.strip()))


def extractive_scene(scene: Scene, passages: list[Passage], language: str) -> Scene | None:
    """The scene narrated as its own evidence (right by construction), or None when its evidence is
    not in the answer's language or not a sentence of any passage."""
    evidence, _ = snap_evidence(scene.evidence, passages)
    usable = [e for e in evidence if detect_language(e.quote) == language and narratable(e.quote)]
    if not usable:
        return None
    narration = _join([readable(e.quote) for e in usable])
    key_point = scene.key_point if scene.key_point and not talks_about_sources(scene.key_point) else ""
    return Scene(narration=narration, key_point=key_point, evidence=usable, origin="extractive")


_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^>]*>`_{1,2}")  # `Timsort <https://...>`_
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")  # [text](url)
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`[~.]*([^`]+)`")  # :meth:`list.sort`, :class:`.Stock` (relative)


def readable(sentence: str) -> str:
    """A passage's sentence as it is narrated: its words, code and numbers, without the markup a
    voice would read out (link targets and web addresses, reST roles, emphasis marks, escapes, the
    bullet or number of a list item, reST's double backquotes and its "::")."""
    text = _LIST_ITEM.sub("", sentence)
    text = _RST_LINK.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _ROLE.sub(r"\1", text)
    text = _URL.sub("", text)
    text = re.sub(r"<\s*>|\\(?=[^\w\s])", "", text)
    text = re.sub(r"(?<![\w*])\*{1,2}(?=\S)(.+?)(?<=\S)\*{1,2}(?![\w*])", r"\1", text)
    text = re.sub(r"``(?=\S)(.+?)(?<=\S)``", r"`\1`", text)  # a reST literal, written as Markdown's
    text = normalise_spaces(re.sub(r"\s+([,.;:!?])", r"\1", text))
    # A sentence that names what a list below it holds is said as a statement ("...after its three
    # steps."); reST's "::" before a literal block reads as one colon.
    return re.sub(
        r"(?<=\S):?[:：]$", lambda m: "。" if has_han(text[m.start() - 1]) or "：" in m[0] else ".", text
    )


def narratable(sentence: str) -> bool:
    """Whether a passage's sentence can be said on its own: a few words at least, not a label that
    ends in a colon ("依據可包括："), not a heading (short, with no end mark), not a bare list of
    words from a table ("傭兵 雇傭 傭人"), not an interpreter session (">>> import twstock"), not a
    question, not a pointer to other documents ("詳細說明請參閱 Changelog")."""
    text = readable(sentence)
    if ">>>" in text:  # an interpreter session: read on screen
        return False
    if re.search(r"[?？]\W*$", text) or talks_about_sources(text):  # the check refuses these
        return False
    if _CODE_STATEMENT.match(text) or _is_data(text):  # shown in a program, not said as an answer
        return False
    weight = _weight(text)
    ends_in_colon = re.search(r"[:：]\s*$", _URL.sub("", sentence))  # readable() ended it with a stop
    if ends_in_colon and (_points_ahead(text) or weight < 16):
        return False  # a label for what follows ("依據可包括：", "Run the following command:")
    if has_han(text) and len(text.split()) >= 3 and re.fullmatch(r"[\w\s、]+", text):
        return False
    if not re.search(r"[.!?。！？；;…]['\"”’」』)）]*$", text) and weight < 16:
        return False  # a heading ("Creating a certificate request"), not a sentence
    return weight >= 6


# A line of a program that means nothing said alone ("return repr((self.name, self.age))",
# "x = f(y)", imports); commands and calls ("openssl req -new ...", "sorted(words, key=str.lower)")
# answer "how do I" questions and stay.
_CODE_STATEMENT = re.compile(
    r"(return|assert|import|from \S+ import|def|class|const|let|var)\s|[A-Za-z_][\w.]*(\s*,\s*[A-Za-z_][\w.]*)*\s*=\s"
)


def _is_data(text: str) -> bool:
    """A printed value, a row of numbers or a line of JSON ("[('john', 'A', 15), ...]",
    "215.0, 211.5, 208.5,", '"fullname": "台灣積體電路製造股份有限公司",')."""
    if re.match(r"\s*\"[\w .-]+\"\s*:", text):
        return True
    visible = [ch for ch in text if not ch.isspace()]
    letters = sum(1 for ch in visible if ch.isalpha())
    starts_as_value = text[:1] in "[({'\"" and letters < 0.6 * len(visible)
    return starts_as_value or letters < 0.25 * len(visible)


def _weight(text: str) -> int:
    """How much a text says: Chinese characters, and two for each word of Latin letters or digits."""
    return sum(1 for ch in text if has_han(ch)) + 2 * len(re.findall(r"[A-Za-z0-9]+", text))


_POINTS_AHEAD = re.compile(
    r"\b(following|as follows|below|here is|here are|like this|like so|for example|e\.g\.|such as|include)\b"
    r"|以下|如下|下列|例如|像是|包括|如：",
    re.IGNORECASE,
)


# "For example, to sort by grade, do the age sort first and then sort again using grade:" opens with
# its pointer and then says the whole step itself.
_EXAMPLE_OPENER = re.compile(r"^\W*(?:for example|for instance|e\.g\.|例如|比如)\s*[,，、]\s*", re.IGNORECASE)


def _points_ahead(text: str) -> bool:
    """Whether a sentence ending in a colon only announces what comes after it."""
    return bool(_POINTS_AHEAD.search(_EXAMPLE_OPENER.sub("", text)))


def sentence_scenes(passages: list[Passage], number: int, language: str) -> list[Scene]:
    """Each narratable sentence of passage ``number`` (1-based) in the answer's language as an
    extractive scene."""
    return [
        _quoted_scene(number, sentence)
        for sentence in _passage_sentences(passages[number - 1])
        if detect_language(sentence) == language and narratable(sentence)
    ]


def _quoted_scene(number: int, sentence: str) -> Scene:
    return Scene(
        narration=readable(sentence), evidence=[Evidence(passage=number, quote=sentence)], origin="extractive"
    )


def candidate_sentences(passages: list[Passage], language: str) -> list[tuple[int, str]]:
    """Every sentence of ``passages`` that could be narrated in ``language``, with its passage number."""
    return [
        (number, sentence)
        for number, passage in enumerate(passages, start=1)
        for sentence in _passage_sentences(passage)
        if detect_language(readable(sentence)) == language and narratable(sentence)
    ]


def with_its_section(sentence: str, passage: Passage) -> str:
    """``sentence`` as read when ranking it against a question: a line of code or a command says
    nothing in words ("openssl req -new -x509 ... -days 1095"), so it is read with the name of the
    section it stands in ("Creating a self-signed test certificate: openssl req ...")."""
    section = passage.heading.rsplit(" > ", 1)[-1].strip()
    return f"{section}: {readable(sentence)}" if section and _is_bare_code(sentence) else readable(sentence)


def _is_bare_code(sentence: str) -> bool:
    """Whether ``sentence`` is code without the words that say what it does (see
    :func:`with_code_joined`: "Generating a key is easy: openssl genrsa ..." has them)."""
    label = re.split(r"[:：]\s", sentence, maxsplit=1)[0]
    return _is_code_line(sentence) and (label == sentence or _is_code_line(label))


def word_share(question: str, sentence: str) -> float:
    """How much of ``sentence``'s content is the question's words, favouring short sentences."""
    units = _content_units(sentence)
    return len(units & _content_units(question)) / len(units) ** 0.5 if units else 0.0


def says(narration: str, sentence: str) -> bool:
    """Whether ``narration`` already says what ``sentence`` states: half of its content words and,
    where it has numbers or code terms, more than half of those."""
    units = _content_units(sentence)
    # Words first: the numbers of a list ("四個買賣點…三日均價…六日均價") can all turn up in a narration
    # that says none of its items ("四大買賣點" and a console line "三日均價小於六日均價").
    if units and len(units & _content_units(narration)) < 0.5 * len(units):
        return False
    missing, total = _unsaid(narration, sentence)
    return 2 * (total - len(missing)) > total if total else True


def best_sentences(question: str, passages: list[Passage], language: str, count: int = 2) -> list[Scene]:
    """Extractive scenes from the passages' sentences that share the most with the question: the
    answer when the model gave nothing usable. When none shares a word, the opening sentences of
    the best-ranked passage in ``language`` (retrieval found it relevant)."""
    asked = _content_units(question)
    candidates = []  # (passage index, sentence, share of the question), in passage order
    for index, passage in enumerate(passages):
        for sentence in _passage_sentences(passage):
            units = _content_units(sentence)
            if units and detect_language(sentence) == language and narratable(sentence):
                candidates.append((index, sentence, len(units & asked) / len(units) ** 0.5))
    ranked = sorted(candidates, key=lambda c: (-c[2], c[0]))
    chosen = [(index, sentence) for index, sentence, overlap in ranked[:count] if overlap > 0]
    if not chosen and candidates:
        first = candidates[0][0]
        chosen = [(index, sentence) for index, sentence, _ in candidates if index == first][:count]
    return [_quoted_scene(index + 1, sentence) for index, sentence in chosen]


def _join(sentences: list[str]) -> str:
    """Sentences as one quote: spaced in English, run together in Chinese."""
    joined = ""
    for sentence in sentences:
        joined += sentence if not joined or (has_han(joined) and has_han(sentence)) else " " + sentence
    return joined


def _short(text: str, limit: int = 60) -> str:
    text = normalise_spaces(text)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
