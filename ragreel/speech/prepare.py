"""Text for narration: what the subtitle shows, and what the voice is asked to say.

Two steps, kept apart so that subtitles never show text rewritten for speech:

* :func:`subtitle_sentences` removes citation markers, markdown and URLs and splits the answer into
  sentences; each one is exactly what a subtitle shows.
* :func:`speech_runs` turns one such piece into what a voice reads: numbers, units and abbreviations
  spelled out for English or Chinese, and mixed text split by script so that Latin words go to a voice
  that can say them (and Chinese characters in English text to a Mandarin one).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ragreel.text import is_han, markdown_to_text, split_sentences

# --- cleaning: Markdown (one parser, in ragreel.text), then citation markers and URLs ----------

# [text][ref], where the text is not itself a citation number like [1][2]
_REFERENCE_LINK = re.compile(r"\[([^\]]*[^\]\d\s,，、;–—-][^\]]*)\]\[[^\]]*\]")
_FOOTNOTE = re.compile(r"\[\^[^\]]+\]")
# [1], [1, 2], [1-3], [1][2], 【1】, [來源1]-style markers are not spoken and not shown.
_CITATION = re.compile(
    r"\s*(?:\[\s*(?:source\s*|來源\s*|来源\s*)?\d+(?:\s*[,，、;–—-]\s*\d+)*\s*\]|【\s*\d+(?:\s*[,，、]\s*\d+)*\s*】)+",
    re.IGNORECASE,
)
# A URL goes with the word that pointed at it ("see https://...", "詳見 https://...").
_URL = re.compile(
    r"(?:(?i:\b(?:see|visit|at|via)\s+)|(?:參見|請見|詳見|請參考)\s*)?(?:https?://|www\.)"
    r"(?:[^\s<>()\[\]\"'，。；！？、]|\([^\s()]*\))*(?:[^\s<>()\[\]\"'，。；！？、.,;:!?]|\([^\s()]*\))"
)
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([,.;:!?，。；：！？、）)」』])")


def clean_text(text: str) -> str:
    """Remove citation markers, markdown and URLs, keeping line breaks (they end sentences)."""
    text = markdown_to_text(unicodedata.normalize("NFC", text))
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _FOOTNOTE.sub("", text)
    text = _CITATION.sub("", text)
    text = _URL.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = re.sub(r"[,;:，；：、]+(?=[.!?。！？])", "", text)  # "roasted; ." once the link is gone
    text = re.sub(r"\(\s*\)|（\s*）", "", text)  # brackets that held only a URL or a marker
    text = re.sub(r"[ \t\u00a0\u3000]+", " ", text)
    return "\n".join(line.strip() for line in text.split("\n"))


def subtitle_sentences(text: str) -> list[str]:
    """The answer as the sentences the subtitles will show (cleaned; nothing rewritten for speech)."""
    sentences = []
    for sentence in split_sentences(clean_text(text)):
        # A sentence made only of punctuation (left behind by a removed URL, say) has nothing to show.
        if any(ch.isalnum() for ch in sentence):
            sentences.append(sentence)
    return sentences


# --- splitting a sentence that is too long for a voice ------------------------------------------

_CLAUSE_END = re.compile(r"(?<=[，、,;:；：])\s*|(?<=[—–])\s*|\s+(?=[—–])")


def split_clauses(sentence: str, max_chars: int) -> list[str]:
    """Split a sentence longer than ``max_chars`` at clause marks (，、,;:), packing clauses greedily.

    A clause that is still too long is split between words (or between characters in Chinese), so
    every piece fits; joined back with single spaces, the pieces give the sentence again.
    """
    if len(sentence) <= max_chars:
        return [sentence]
    clauses = [c for c in _CLAUSE_END.split(sentence) if c and c.strip()]
    pieces: list[str] = []
    for clause in clauses:
        clause = clause.strip()
        for part in _split_hard(clause, max_chars):
            if pieces and len(pieces[-1]) + 1 + len(part) <= max_chars:
                joiner = "" if _ends_cjk(pieces[-1]) else " "
                pieces[-1] = pieces[-1] + joiner + part
            else:
                pieces.append(part)
    return pieces


def _ends_cjk(text: str) -> bool:
    return bool(text) and (is_han(text[-1]) or text[-1] in "，、；：。！？")


def _split_hard(clause: str, max_chars: int) -> list[str]:
    if len(clause) <= max_chars:
        return [clause]
    words = clause.split(" ")
    if len(words) > 1:
        pieces = [""]
        for word in words:
            for chunk in _split_hard(word, max_chars):
                candidate = f"{pieces[-1]} {chunk}".strip()
                if len(candidate) <= max_chars:
                    pieces[-1] = candidate
                else:
                    pieces.append(chunk)
        return [p for p in pieces if p]
    return [clause[i : i + max_chars] for i in range(0, len(clause), max_chars)]


# --- script runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeechRun:
    """A stretch of text in one language, written out for a voice to read."""

    language: str  # "en" or "zh"
    text: str


def _script(ch: str) -> str | None:
    if is_han(ch):
        return "zh"
    if "a" <= ch.lower() <= "z":
        return "en"
    return None  # digits, punctuation and spaces belong to their neighbours


def split_by_script(text: str) -> list[tuple[str, str]]:
    """Split text into (language, text) runs of Han and Latin script.

    Digits, punctuation and spaces go with the run before them (so "Python 3" stays English and
    "有3個" stays Chinese), or with the first run when they lead.
    """
    runs: list[list[str]] = []
    pending = ""
    for ch in text:
        script = _script(ch)
        if script is None:
            if runs:
                runs[-1][1] += ch
            else:
                pending += ch
            continue
        if runs and runs[-1][0] == script:
            runs[-1][1] += ch
            continue
        lead = pending
        if runs and script == "en":
            # Digits written against a Latin word belong to it: 5G, 4K.
            glued = re.search(r"\d+$", runs[-1][1])
            if glued:
                lead = glued[0]
                runs[-1][1] = runs[-1][1][: glued.start()]
                if not runs[-1][1]:
                    runs.pop()
        runs.append([script, lead + ch])
        pending = ""
    if pending and not runs:
        return [("", pending)]
    return [(script, chunk) for script, chunk in runs]


# --- code and identifiers: a spoken form for the voice; the subtitle keeps what was written ---------

_OPERATORS = {
    "+=": ("plus equals", "加等於"),
    "-=": ("minus equals", "減等於"),
    "*=": ("times equals", "乘等於"),
    "/=": ("divided equals", "除等於"),
    "==": ("equals", "等於"),
    "!=": ("not equal to", "不等於"),
    "->": ("returns", "傳回"),
    "=>": ("arrow", "箭頭"),
}
_OPERATOR = re.compile(
    r"(?<=[\w\s)\]])\s*(" + "|".join(re.escape(o) for o in _OPERATORS) + r")\s*(?=[\w\s(\[])"
)
_DUNDER = re.compile(r"(?<![\w])__([A-Za-z]\w*?)__(?![\w])")
_DOTTED = re.compile(r"(?<![\w.])(?:[A-Za-z_]\w+)?(?:\.[A-Za-z_]\w+)+(?![\w])")
_CALL = re.compile(r"(?<=\w)\(\)")
_OPTION = re.compile(r"(?<![\w-])--(?=[A-Za-z])")


def spoken_code(text: str, language: str) -> str:
    """Identifiers and code as a voice can say them: __enter__ is "dunder enter", x += 1 "x plus
    equals 1", os.path.join() "os dot path dot join", .python_history "dot python history"."""
    text = text.replace("`", "")
    text = _DUNDER.sub(lambda m: f" dunder {m[1].replace('_', ' ')} ", text)
    text = _OPERATOR.sub(lambda m: f" {_OPERATORS[m[1]][language == 'zh']} ", text)
    text = _CALL.sub("", text)
    text = _OPTION.sub("dash dash ", text)
    text = _DOTTED.sub(lambda m: m[0].replace(".", " dot ").replace("_", " ").strip(), text)
    text = re.sub(r"(?<=[A-Za-z0-9])_+(?=[A-Za-z0-9])", " ", text)  # snake_case words
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def speech_runs(text: str, language: str) -> list[SpeechRun]:
    """What a voice reads for one subtitle piece: runs by script, each written out in its language.

    ``language`` is the narration's language; text without letters of either script (a lone
    number, say) is read in it.
    """
    text = spoken_code(_unify_width(text), language)
    if language == "zh":
        # Units and symbols first: "5kg" must become 5公斤 before "kg" could pass for an English word.
        text = _zh_symbols(_zh_units(text))
    runs: list[SpeechRun] = []
    for script, chunk in split_by_script(text):
        run_language = script or language
        spoken = normalize_zh(chunk) if run_language == "zh" else normalize_en(chunk)
        spoken = re.sub(r"\s+", " ", spoken).strip()
        if not any(ch.isalnum() for ch in spoken):
            continue
        if runs and runs[-1].language == run_language:
            runs[-1] = SpeechRun(run_language, f"{runs[-1].text} {spoken}")
        else:
            runs.append(SpeechRun(run_language, spoken))
    return runs


def _unify_width(text: str) -> str:
    # Full-width digits and Latin letters (１２３, ＡＩ) are read like their ASCII forms.
    return "".join(
        unicodedata.normalize("NFKC", ch) if ("０" <= ch <= "９" or "Ａ" <= ch <= "ｚ") else ch for ch in text
    )


# --- English: numbers, units, abbreviations -------------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else ""))
    elif n or not words:
        words.append(_ONES[n])
    return words


def en_cardinal(n: int) -> str:
    """1234 -> 'one thousand two hundred thirty-four'; beyond trillions, digit by digit."""
    if n < 0:
        return "minus " + en_cardinal(-n)
    if n >= 10**15:
        return " ".join(_ONES[int(d)] for d in str(n))
    words: list[str] = []
    for value, name in _SCALES:
        if n >= value:
            words += _below_thousand(n // value) + [name]
            n %= value
    if n or not words:
        words += _below_thousand(n)
    return " ".join(words)


def en_ordinal(n: int) -> str:
    """21 -> 'twenty-first'."""
    words = en_cardinal(n)
    head, sep, last = words.rpartition(" ")
    stem, hyphen, unit = last.rpartition("-")
    if unit in _ORDINAL_IRREGULAR:
        unit = _ORDINAL_IRREGULAR[unit]
    elif unit.endswith("y"):
        unit = unit[:-1] + "ieth"
    else:
        unit += "th"
    return f"{head}{sep}{stem}{hyphen}{unit}"


def en_year(n: int) -> str:
    """1984 -> 'nineteen eighty-four', 2005 -> 'two thousand five', 2024 -> 'twenty twenty-four'."""
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return en_cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{en_cardinal(high)} hundred"
    if low < 10:
        return f"{en_cardinal(high)} oh {_ONES[low]}"
    return f"{en_cardinal(high)} {en_cardinal(low)}"


_EN_UNITS = {
    "%": ("percent", "percent"),
    "percent": ("percent", "percent"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "℃": ("degree Celsius", "degrees Celsius"),
    "°": ("degree", "degrees"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "m": ("meter", "meters"),
    "kg": ("kilogram", "kilograms"),
    "mg": ("milligram", "milligrams"),
    "g": ("gram", "grams"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "L": ("liter", "liters"),
    "TB": ("terabyte", "terabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "MB": ("megabyte", "megabytes"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "GHz": ("gigahertz", "gigahertz"),
    "MHz": ("megahertz", "megahertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "Hz": ("hertz", "hertz"),
    "kW": ("kilowatt", "kilowatts"),
    "W": ("watt", "watts"),
    "ms": ("millisecond", "milliseconds"),
    "min": ("minute", "minutes"),
    "h": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "s": ("second", "seconds"),
}
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "US$": ("dollar", "dollars", "cent", "cents"),
    "NT$": ("New Taiwan dollar", "New Taiwan dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "sen", "sen"),
}
_UNIT_PATTERN = "|".join(re.escape(u) for u in sorted(_EN_UNITS, key=len, reverse=True))
_CURRENCY_PATTERN = "|".join(re.escape(c) for c in sorted(_CURRENCIES, key=len, reverse=True))
_EN_NUMBER = re.compile(
    rf"(?P<cur>{_CURRENCY_PATTERN})?"
    rf"(?P<sign>(?<![\w\-])[-−])?"
    r"(?<![\w.,])(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?![\d,]\d)"
    r"(?P<ord>st|nd|rd|th)?"
    r"(?P<scale>\s(?:thousand|million|billion|trillion)\b)?"
    rf"(?P<unit>\s?(?:{_UNIT_PATTERN}))?"
    r"(?![A-Za-z\d])"
)
_EN_RANGE = re.compile(r"(?<![\w.\-])(\d+(?:\.\d+)?)\s?[–—-]\s?(?=\d+(?:\.\d+)?(?![\d\-]))")
_EN_ABBREVIATIONS = [
    (re.compile(r"\be\.g\.(?=\W|$)", re.IGNORECASE), "for example"),
    (re.compile(r"\bi\.e\.(?=\W|$)", re.IGNORECASE), "that is"),
    (re.compile(r"\betc\.(?=\W|$)", re.IGNORECASE), "et cetera"),
    (re.compile(r"\bvs\.?(?=\W|$)", re.IGNORECASE), "versus"),
    (re.compile(r"\bapprox\.(?=\W|$)", re.IGNORECASE), "approximately"),
    (re.compile(r"\bcf\.(?=\W|$)", re.IGNORECASE), "compare"),
    (re.compile(r"\bet al\.(?=\W|$)"), "and others"),
    (re.compile(r"\bDr\.(?=\s)"), "Doctor"),
    (re.compile(r"\bMr\.(?=\s)"), "Mister"),
    (re.compile(r"\bMrs\.(?=\s)"), "Missus"),
    (re.compile(r"\bMs\.(?=\s)"), "Miz"),
    (re.compile(r"\bProf\.(?=\s)"), "Professor"),
    (re.compile(r"\b[Nn]o\.(?=\s?\d)"), "number"),
    (re.compile(r"\bFig\.(?=\s?\d)", re.IGNORECASE), "figure"),
    (re.compile(r"\bw/(?=\s)"), "with"),
    (re.compile(r"\band/or\b"), "and or"),
]
_EN_SYMBOLS = [
    (re.compile(r"\s*&\s*"), " and "),
    (re.compile(r"(?<=\d)\s*[×x]\s*(?=\d)"), " times "),
    (re.compile(r"(?<=\d)\s*\+\s*(?=\d)"), " plus "),
    (re.compile(r"\s*=\s*"), " equals "),
    (re.compile(r"[~≈∼]\s*(?=[$€£¥]?\d)"), "about "),
    (re.compile(r"\s*→\s*"), " to "),
    (re.compile(r"#(?=\d)"), "number "),
]
# Acronyms said as words; other all-capital words of two to four letters are spelled out.
_SAID_AS_WORDS = {
    "NASA",
    "NATO",
    "RAM",
    "ROM",
    "GIF",
    "JPEG",
    "PIN",
    "SIM",
    "LAN",
    "WAN",
    "RAG",
    "OK",
    "UNESCO",
    "COVID",
    "LIDAR",
    "RADAR",
    "LASER",
    "SCUBA",
    "ASAP",
    "AIDS",
    "FAQ",
    "PDF",
}
_NUMBER_LETTER = re.compile(r"(?<![\w.])(\d{1,3})([A-Z])\b")  # 5G, 4K
_ACRONYM = re.compile(r"\b([A-Z]{2,4})(s?)\b")


def _en_number(match: re.Match[str]) -> str:
    integer = int(match["int"].replace(",", ""))
    frac = match["frac"]
    unit = (match["unit"] or "").strip()
    scale = (match["scale"] or "").strip()
    sign = "minus " if match["sign"] else ""
    if match["ord"] and not frac:
        return sign + en_ordinal(integer)
    if match["cur"]:
        one, many, sub_one, sub_many = _CURRENCIES[match["cur"]]
        if scale:
            words = f"{en_cardinal(integer)}{_en_fraction(frac)} {scale} {many}"
        elif frac and len(frac) == 3:
            cents = int(frac[1:])
            words = f"{en_cardinal(integer)} {one if integer == 1 else many}"
            if cents:
                words += f" and {en_cardinal(cents)} {sub_one if cents == 1 else sub_many}"
        else:
            words = f"{en_cardinal(integer)}{_en_fraction(frac)} {one if integer == 1 and not frac else many}"
        return sign + words + (f" {unit}" if unit else "")
    if (
        not frac
        and not unit
        and not scale
        and not sign
        and "," not in match["int"]
        and len(match["int"]) == 4
        and 1100 <= integer <= 2099
    ):
        words = en_year(integer)
    else:
        words = en_cardinal(integer) + _en_fraction(frac)
    if scale:
        words += f" {scale}"
    if unit:
        one, many = _EN_UNITS[unit]
        words += " " + (one if integer == 1 and not frac and not scale else many)
    return sign + words


def _en_fraction(frac: str | None) -> str:
    if not frac:
        return ""
    return " point " + " ".join(_ONES[int(d)] for d in frac[1:])


def _spell_acronym(match: re.Match[str]) -> str:
    word, plural = match[1], match[2]
    if word in _SAID_AS_WORDS:
        return match[0]
    return " ".join(word) + ("'s" if plural else "")


def normalize_en(text: str) -> str:
    """English written out for a voice: abbreviations, symbols, acronyms, numbers and units."""
    for pattern, words in _EN_ABBREVIATIONS:
        text = pattern.sub(words, text)
    text = _EN_RANGE.sub(r"\1 to ", text)
    for pattern, words in _EN_SYMBOLS:
        text = pattern.sub(words, text)
    text = _EN_NUMBER.sub(_en_number, text)
    text = _NUMBER_LETTER.sub(lambda m: f"{en_cardinal(int(m[1]))} {m[2]}", text)
    text = _ACRONYM.sub(_spell_acronym, text)
    return re.sub(r"[ \t]+", " ", text).strip()


# --- Chinese: numbers, units, symbols ------------------------------------------------------------

_ZH_UNITS = {
    "km/h": "公里每小時",
    "km": "公里",
    "cm": "公分",
    "mm": "毫米",
    "m": "公尺",
    "kg": "公斤",
    "mg": "毫克",
    "g": "公克",
    "ml": "毫升",
    "mL": "毫升",
    "L": "公升",
    "TB": "TB",
    "GB": "GB",
    "MB": "MB",
    "GHz": "GHz",
    "MHz": "MHz",
    "Hz": "赫茲",
    "kW": "千瓦",
    "W": "瓦",
    "ms": "毫秒",
    "min": "分鐘",
    "h": "小時",
    "s": "秒",
}
_ZH_UNIT_PATTERN = "|".join(re.escape(u) for u in sorted(_ZH_UNITS, key=len, reverse=True))
_ZH_NUMBER_UNIT = re.compile(rf"(\d+(?:\.\d+)?)\s?({_ZH_UNIT_PATTERN})(?![A-Za-z])")
_ZH_PERCENT = re.compile(r"([-−]?\d+(?:\.\d+)?)\s?[%％]")
_ZH_DEGREES = re.compile(r"([-−]?\d+(?:\.\d+)?)\s?(?:°C|℃|度C)")
_ZH_SYMBOLS = [
    (re.compile(r"(?<=\d)\s?[~～–—-]\s?(?=\d)"), "到"),
    (re.compile(r"(?<=\d)\s?[×xX*]\s?(?=\d)"), "乘以"),
    (re.compile(r"(?<=\d)\s?\+\s?(?=\d)"), "加"),
    (re.compile(r"\s?=\s?"), "等於"),
    (re.compile(r"\s?&\s?"), "和"),
    (re.compile(r"[≈～~]\s?(?=\d)"), "大約"),
]
_ZH_YEAR = re.compile(r"(?<![\d.])(\d{4})\s?年")
_ZH_DIGIT_STRING = re.compile(r"(?<![\d.,])(?:\d{9,}|0\d+)(?![\d.,]\d)")
_ZH_NUMBER = re.compile(r"([-−])?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
_ZH_DIGITS = "零一二三四五六七八九"


def _zh_units(text: str) -> str:
    text = _ZH_DEGREES.sub(r"攝氏\1度", text)
    text = _ZH_PERCENT.sub(r"百分之\1", text)
    return _ZH_NUMBER_UNIT.sub(lambda m: m[1] + _ZH_UNITS[m[2]], text)


def _zh_symbols(text: str) -> str:
    for pattern, words in _ZH_SYMBOLS:
        text = pattern.sub(words, text)
    return text


def _zh_below_10000(n: int) -> str:
    words = ""
    zero_pending = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit, n = divmod(n, value)
        if digit:
            if zero_pending and words:
                words += "零"
            words += _ZH_DIGITS[digit] + unit
            zero_pending = False
        else:
            zero_pending = True
    return words


def zh_integer(n: int) -> str:
    """10203 -> '一萬零二百零三', 15 -> '十五' (Traditional 萬/億/兆, as the subtitles are written)."""
    if n == 0:
        return "零"
    if n >= 10**16:
        return "".join(_ZH_DIGITS[int(d)] for d in str(n))
    groups = []
    while n:
        n, group = divmod(n, 10_000)
        groups.append(group)
    words = ""
    zero_pending = False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if not group:
            zero_pending = True
            continue
        if words and (zero_pending or group < 1000):
            words += "零"
        words += _zh_below_10000(group) + ("", "萬", "億", "兆")[index]
        zero_pending = False
    # 十五, not 一十五, at the start of a number.
    return words[1:] if words.startswith("一十") else words


def zh_number(number: str) -> str:
    """'1,234.5' -> '一千二百三十四點五'."""
    integer, _, fraction = number.replace(",", "").partition(".")
    words = zh_integer(int(integer))
    if fraction:
        words += "點" + "".join(_ZH_DIGITS[int(d)] for d in fraction)
    return words


def normalize_zh(text: str) -> str:
    """Chinese written out for a voice: years digit by digit, other numbers as Chinese numerals."""
    text = _zh_symbols(_zh_units(text))
    text = _ZH_YEAR.sub(lambda m: "".join(_ZH_DIGITS[int(d)] for d in m[1]) + "年", text)
    text = _ZH_DIGIT_STRING.sub(lambda m: "".join(_ZH_DIGITS[int(d)] for d in m[0]), text)
    return _ZH_NUMBER.sub(lambda m: ("負" if m[1] else "") + zh_number(m[2] + (m[3] or "")), text)
