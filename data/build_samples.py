"""Rebuild the sample knowledge base's figures and its PDF: ``python data/build_samples.py``.

The files it writes are committed (``make demo`` never runs this); the script is kept so that
anyone can see how they were made and change them. The figures draw only facts that the
documents beside them state, so a video that shows one never shows something the text lacks.
Needs the test extra (fpdf2) for the PDF.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageDraw

KB = Path(__file__).resolve().parent / "kb"

INK, PAPER, ACCENT, MUTED = (34, 40, 52), (250, 248, 243), (196, 112, 20), (120, 128, 140)


def _font(size: int, weight: str = "Regular"):
    from ragreel.settings import Settings
    from ragreel.video.fonts import find_font, load_font

    return load_font(find_font(Settings()), size, weight)


def altitude_figure(path: Path) -> None:
    """高山烏龍茶: 海拔一千公尺以上才稱高山茶; 梨山可達兩千公尺以上 (high-mountain-oolong.md)."""
    width, height = 1200, 800
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    ground, top = 700, 120  # y of 0 m and of 2,500 m

    def y_of(metres: float) -> float:
        return ground - (ground - top) * metres / 2500

    ridge = [(0, y_of(200)), (260, y_of(1300)), (430, y_of(900)), (700, y_of(2300)), (900, y_of(1500)),
             (1200, y_of(400)), (1200, ground), (0, ground)]  # fmt: skip
    draw.polygon(ridge, fill=(120, 150, 110))
    for metres in (1000, 2000):
        y = y_of(metres)
        draw.line([(0, y), (width, y)], fill=ACCENT if metres == 1000 else MUTED, width=4)
    label, small = _font(40, "Bold"), _font(32)
    draw.text((30, y_of(1000) - 56), "海拔一千公尺：以上稱為高山茶", font=label, fill=ACCENT)
    draw.text((30, y_of(2000) - 46), "兩千公尺", font=small, fill=MUTED)
    draw.text((640, y_of(2300) - 50), "梨山", font=label, fill=INK)
    draw.text((220, y_of(1300) - 50), "阿里山", font=small, fill=INK)
    draw.text((40, 30), "高山茶與海拔", font=_font(48, "Bold"), fill=INK)
    image.save(path, optimize=True)


def temperature_figure(path: Path) -> None:
    """Lightly oxidised oolongs at 90 to 95 °C, dark roasted ones up to boiling (brewing-guide.md)."""
    width, height = 1200, 720
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    bottom, scale = 640, 4.4  # y of 0 °C, pixels per degree
    label, small = _font(36, "Bold"), _font(30)
    draw.text((40, 30), "Water temperature for oolong", font=_font(46, "Bold"), fill=INK)
    for index, (name, low, high, color) in enumerate(
        [("Lightly oxidised", 90, 95, (120, 170, 90)), ("Dark, roasted", 95, 100, (150, 90, 40))]
    ):
        x = 200 + index * 450
        draw.rectangle([x, bottom - high * scale, x + 260, bottom], fill=color)
        draw.rectangle([x, bottom - high * scale, x + 260, bottom - low * scale], fill=ACCENT)
        draw.text((x + 130, bottom - high * scale - 12), f"{low}-{high} °C" if high < 100 else "up to boiling",
                  font=label, fill=INK, anchor="md")  # fmt: skip
        draw.text((x + 130, bottom + 20), name, font=small, fill=INK, anchor="ma")
    draw.line([(120, bottom), (width - 80, bottom)], fill=MUTED, width=3)
    image.save(path, optimize=True)


STATIONS = ["Nangang", "Taipei", "Banqiao", "Taoyuan", "Hsinchu", "Miaoli",
            "Taichung", "Changhua", "Yunlin", "Chiayi", "Tainan", "Zuoying"]  # fmt: skip


def route_figure(path: Path) -> None:
    """The 12 stations of the Taiwan High Speed Rail, north to south (high-speed-rail.pdf)."""
    width, height = 1400, 560
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    left, right, y = 80, width - 80, 300
    draw.line([(left, y), (right, y)], fill=ACCENT, width=12)
    name = _font(30)
    step = (right - left) / (len(STATIONS) - 1)
    for index, station in enumerate(STATIONS):
        x = left + index * step
        draw.ellipse([x - 18, y - 18, x + 18, y + 18], fill=(255, 255, 255), outline=INK, width=6)
        draw.text((x, y - 40 if index % 2 else y + 44), station, font=name, fill=INK,
                  anchor="md" if index % 2 else "ma")  # fmt: skip
    draw.text(
        (left, 40), "Taiwan High Speed Rail: 12 stations, north to south", font=_font(40, "Bold"), fill=INK
    )
    image.save(path, optimize=True)


RAIL_TEXT = [
    (
        "Taiwan High Speed Rail",
        "The Taiwan High Speed Rail runs along the west coast of Taiwan, from Nangang in Taipei to "
        "Zuoying in Kaohsiung. The line is about 350 kilometres long. Commercial service began on "
        "5 January 2007.",
    ),
    (
        "Stations",
        "The line has 12 stations: Nangang, Taipei, Banqiao, Taoyuan, Hsinchu, Miaoli, Taichung, "
        "Changhua, Yunlin, Chiayi, Tainan and Zuoying. Many stations connect to the MRT or to the "
        "conventional railway.",
    ),
    (
        "Speed and travel time",
        "Trains run at up to 300 kilometres per hour. The fastest trains travel from Taipei to "
        "Zuoying in under two hours, a trip that takes more than four hours on the conventional "
        "railway. Passengers should arrive at the platform a few minutes before departure, because "
        "trains leave on time.",
    ),
]


def rail_pdf(path: Path, figure: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Taiwan High Speed Rail")
    pdf.set_creation_date(datetime(2026, 12, 3, tzinfo=UTC))  # the same bytes on every rebuild
    pdf.add_page()
    for index, (heading, body) in enumerate(RAIL_TEXT):
        pdf.start_section(heading)
        pdf.set_font("helvetica", "B", 20 if index == 0 else 14)
        pdf.multi_cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 7, body, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        if heading == "Stations":
            pdf.image(str(figure), w=pdf.epw)
            pdf.set_font("helvetica", "I", 10)
            pdf.multi_cell(
                0,
                6,
                "Figure 1. The stations of the high speed rail, from north to south.",
                new_x="LMARGIN",
                new_y="NEXT",
            )
            pdf.ln(3)
    pdf.output(str(path))


def main() -> None:
    altitude_figure(KB / "tea" / "high-mountain-altitude.png")
    temperature_figure(KB / "tea" / "oolong-water-temperature.png")
    route = Path("/tmp/ragreel-rail-route.png")
    route_figure(route)
    rail_pdf(KB / "high-speed-rail.pdf", route)
    print("wrote the figures and the PDF under", KB)


if __name__ == "__main__":
    main()
