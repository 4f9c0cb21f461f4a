"""A small SVG writer for the benchmark's charts: a grid of panels, each a horizontal bar per target.

No plotting library: the charts are output formatting, a few rectangles and labels. Each panel
has its own scale (requests per second and µs per request do not share one); our targets are
drawn in a strong colour, our baseline's in a light one, the peers in grey and nginx's own
ceiling as an outline.

    svg = grid_svg("title", ["subtitle line"], [[Panel("hello: req/s", [Bar("python", 51700, "ours", "51.7k")])]])
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

# Fill and outline by kind of target.
STYLES = {
    "ours": ("#1f6feb", "#1f6feb"),
    "base": ("#9ec2f7", "#6f9fe6"),
    "peer": ("#a8adb3", "#8a9096"),
    "ceiling": ("#ffffff", "#8a9096"),
    "limit": ("#ffffff", "#1f6feb"),
}
LEGEND = (
    ("ours", "ours"),
    ("base", "ours, baseline build"),
    ("peer", "peers"),
    ("ceiling", "nginx's own answer"),
    ("limit", "the app alone, no server"),
)

FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'
PANEL_WIDTH = 380
LABEL_WIDTH = 132
VALUE_ROOM = 70
BAR_HEIGHT = 14
BAR_GAP = 5
PANEL_HEAD = 22
PANEL_GAP = 26
MARGIN = 16


@dataclass
class Bar:
    label: str
    value: float | None  # None: no figure (a target left out); the text says why
    kind: str = "peer"  # a key of STYLES
    text: str = ""  # the figure as printed beside the bar


@dataclass
class Panel:
    title: str
    bars: list[Bar]
    note: str = ""  # e.g. "higher is better", printed after the title


def commit_label(commit: str) -> str:
    """A results file's commit ("abc1234 subject", maybe "(with uncommitted changes)") as a chart
    names it: the short id alone, the subject would not fit."""
    changed = " (with uncommitted changes)" if commit.endswith("(with uncommitted changes)") else ""
    return (commit.split(" ", 1)[0] or "?") + changed


def scale(values: list[float | None]) -> tuple[float, float | None]:
    """A panel's full-scale value, and the value beyond which a bar is drawn broken (None: no
    bar is). One bar more than three times the next would flatten the others to slivers: the
    scale then ends a little past the next, and that bar is drawn cut."""
    shown = sorted((v for v in values if v is not None and v > 0), reverse=True)
    if not shown:
        return 1.0, None
    if len(shown) > 1 and shown[0] > 3 * shown[1]:
        return shown[1] * 1.25, shown[1] * 1.25
    return shown[0], None


def text_width(text: str, size: float, bold: bool = False) -> float:
    """About how wide a line of text is drawn (DejaVu Sans: about 0.6 em a character)."""
    return len(text) * size * (0.66 if bold else 0.6)


def panel_height(panel: Panel) -> int:
    return PANEL_HEAD + len(panel.bars) * (BAR_HEIGHT + BAR_GAP)


def draw_panel(panel: Panel, x: float, y: float) -> list[str]:
    out = [
        f'<text x="{x}" y="{y + 14}" font-size="13" font-weight="bold">{escape(panel.title)}'
        + (f'<tspan font-weight="normal" fill="#57606a"> ({escape(panel.note)})</tspan>' if panel.note else "")
        + "</text>"
    ]
    top, cut = scale([b.value for b in panel.bars])
    room = PANEL_WIDTH - LABEL_WIDTH - VALUE_ROOM
    for i, bar in enumerate(panel.bars):
        by = y + PANEL_HEAD + i * (BAR_HEIGHT + BAR_GAP)
        fill, stroke = STYLES.get(bar.kind, STYLES["peer"])
        weight = ' font-weight="bold"' if bar.kind == "ours" else ""
        out.append(
            f'<text x="{x + LABEL_WIDTH - 6}" y="{by + BAR_HEIGHT - 3}" font-size="12" text-anchor="end"{weight}>'
            f"{escape(bar.label)}</text>"
        )
        width = 0.0
        if bar.value is not None and bar.value > 0:
            broken = cut is not None and bar.value > cut
            width = room if broken else max(1.0, room * bar.value / top)
            dash = ' stroke-dasharray="3,2"' if bar.kind == "ceiling" else ""
            out.append(
                f'<rect x="{x + LABEL_WIDTH}" y="{by}" width="{width:.1f}" height="{BAR_HEIGHT}" '
                f'fill="{fill}" stroke="{stroke}"{dash}><title>{escape(bar.label)}: {escape(bar.text)}</title></rect>'
            )
            if broken:
                # Off the scale: a white break across the bar says it is drawn shorter than it is.
                bx = x + LABEL_WIDTH + room * 0.8
                out.append(
                    f'<path class="break" d="M{bx:.1f},{by - 2} l6,{BAR_HEIGHT + 4} h5 l-6,{-(BAR_HEIGHT + 4)} z" '
                    'fill="#ffffff"/>'
                )
        text = bar.text or ("-" if bar.value is None else f"{bar.value:,.0f}")
        out.append(
            f'<text x="{x + LABEL_WIDTH + width + 4:.1f}" y="{by + BAR_HEIGHT - 3}" font-size="11" '
            f'fill="{"#24292f" if bar.value is not None else "#8a9096"}"{weight}>{escape(text)}</text>'
        )
    return out


def grid_svg(title: str, subtitle: list[str], rows: list[list[Panel]]) -> str:
    """The whole chart: a title, subtitle lines, a legend of the kinds present, then the panels,
    row by row (each row as tall as its tallest panel); as wide as its widest line of text."""
    columns = max((len(row) for row in rows), default=1)
    width = MARGIN * 2 + columns * PANEL_WIDTH + (columns - 1) * PANEL_GAP
    widest = max([text_width(title, 16, True)] + [text_width(line, 12) for line in subtitle])
    width = int(max(width, MARGIN * 2 + widest))
    kinds = {bar.kind for row in rows for panel in row for bar in panel.bars}
    body = [f'<text x="{MARGIN}" y="{MARGIN + 14}" font-size="16" font-weight="bold">{escape(title)}</text>']
    y = MARGIN + 22
    for line in subtitle:
        y += 16
        body.append(f'<text x="{MARGIN}" y="{y}" font-size="12" fill="#57606a">{escape(line)}</text>')
    y += 14
    lx = MARGIN
    for kind, label in LEGEND:
        if kind not in kinds:
            continue
        fill, stroke = STYLES[kind]
        dash = ' stroke-dasharray="3,2"' if kind == "ceiling" else ""
        body.append(f'<rect x="{lx}" y="{y}" width="12" height="12" fill="{fill}" stroke="{stroke}"{dash}/>')
        body.append(f'<text x="{lx + 16}" y="{y + 10}" font-size="12">{escape(label)}</text>')
        lx += 16 + 7 * len(label) + 18
    y += 26
    for row in rows:
        for column, panel in enumerate(row):
            body += draw_panel(panel, MARGIN + column * (PANEL_WIDTH + PANEL_GAP), y)
        y += max(panel_height(p) for p in row) + PANEL_GAP
    height = y - PANEL_GAP + MARGIN
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" {FONT} fill="#24292f">\n'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>\n' + "\n".join(body) + "\n</svg>\n"
    )
