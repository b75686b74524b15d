"""The one font that sets every frame: Latin and Chinese with Traditional glyph forms.

Pillow has no font fallback, so a single face must cover both scripts. The default is
Noto Sans CJK TC from the ``manimgx-fonts-cjk`` package (the variable Noto Sans CJK 2.004
collection, pip-installable, no root needed). In a collection the Traditional Chinese face
is picked by its family name, never by a position: the same file's face 0 is Japanese, and
Simplified Chinese forms differ from Traditional ones.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from ragreel.errors import DependencyMissing, InputError
from ragreel.settings import Settings

logger = logging.getLogger(__name__)

FONT_PACKAGE = "manimgx-fonts-cjk==2026.9.26.post1"
PREFERRED_FAMILIES = ("Noto Sans CJK TC", "Noto Serif CJK TC", "Noto Sans CJK HK", "Noto Sans TC")
# Any code point a font cannot map falls back to glyph 0 (.notdef); this one is a
# permanent non-character, so it never has a glyph of its own.
_NOT_A_CHARACTER = "\uffff"
_MAX_FACES = 64


@dataclass(frozen=True)
class FontFace:
    """One face of a font file: what Pillow needs to open it again."""

    path: Path
    index: int
    family: str
    variable: bool


def find_font(settings: Settings) -> FontFace:
    """The configured font (``RAGREEL_FONT_PATH``) or the packaged Noto Sans CJK TC."""
    if settings.font_path is not None:
        path = settings.font_path.expanduser()
        if not path.is_file():
            raise InputError(
                f"font {path} does not exist",
                stage="render",
                hint="point RAGREEL_FONT_PATH at a .ttf/.otf/.ttc covering Latin and CJK, or unset it",
            )
        return choose_face(path)
    return choose_face(packaged_font_path())


def packaged_font_path() -> Path:
    """The font file that the ``manimgx-fonts-cjk`` package installs beside its ``__init__``."""
    import importlib.util

    spec = importlib.util.find_spec("manimgx_fonts_cjk")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissing(
            "no font covering Latin and Chinese is installed",
            stage="render",
            hint=f"pip install {FONT_PACKAGE}, or set RAGREEL_FONT_PATH to a CJK font "
            "(e.g. /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc)",
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    fonts = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".ttc", ".otf", ".ttf"})
    if not fonts:
        raise DependencyMissing(
            f"the manimgx-fonts-cjk package in {folder} has no font file",
            stage="render",
            hint=f"reinstall it: pip install --force-reinstall {FONT_PACKAGE}",
        )
    return fonts[0]


@functools.lru_cache(maxsize=16)
def choose_face(path: Path) -> FontFace:
    """The face of ``path`` with Traditional Chinese forms, chosen by family name."""
    from PIL import ImageFont

    faces: list[tuple[int, str, bool]] = []
    for index in range(_MAX_FACES):
        try:
            font = ImageFont.truetype(str(path), 24, index=index)
        except OSError:
            if index == 0:
                raise InputError(
                    f"{path} is not a font Pillow can open",
                    stage="render",
                    hint="use a TrueType/OpenType font (.ttf, .otf or .ttc)",
                ) from None
            break
        family = font.getname()[0] or ""
        faces.append((index, family, _is_variable(font)))
    ranked = sorted(faces, key=lambda face: _family_rank(face[1]))
    index, family, variable = ranked[0]
    logger.info("font: %s (face %d of %s, %s)", family, index, path, "variable" if variable else "static")
    return FontFace(path=path, index=index, family=family, variable=variable)


def _family_rank(family: str) -> int:
    if family in PREFERRED_FAMILIES:
        return PREFERRED_FAMILIES.index(family)
    if family.endswith((" TC", " HK")) or "Traditional" in family:
        return len(PREFERRED_FAMILIES)
    return len(PREFERRED_FAMILIES) + 1


def _is_variable(font) -> bool:
    try:
        return bool(font.get_variation_names())
    except OSError:
        return False


@functools.lru_cache(maxsize=64)
def load_font(face: FontFace, size: int, weight: str = "Regular"):
    """A Pillow font of ``face`` at ``size`` pixels; ``weight`` names an instance of a variable font.

    A variable collection opens at its default instance, which for Noto Sans CJK is Thin, so
    the weight is always set. Static fonts ignore ``weight``.
    """
    from PIL import ImageFont

    font = ImageFont.truetype(str(face.path), size, index=face.index)
    if face.variable:
        try:
            font.set_variation_by_name(weight)
        except (OSError, ValueError):
            logger.warning("font %s has no %s instance; using its default weight", face.family, weight)
    return font


def missing_glyphs(font, text: str) -> list[str]:
    """The distinct characters of ``text`` that ``font`` would draw as its missing-glyph box."""
    notdef = _mask_signature(font, _NOT_A_CHARACTER)
    missing = []
    for char in dict.fromkeys(text):
        if char.isspace() or not char.isprintable():
            continue
        if _mask_signature(font, char) == notdef:
            missing.append(char)
    return missing


def _mask_signature(font, char: str) -> tuple:
    mask = font.getmask(char)
    return mask.size, bytes(mask)
