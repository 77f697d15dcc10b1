"""Grid placement, so panel positions are computed and never overlap, instead of counted by hand."""

from __future__ import annotations

from typing import Sequence

import attr
from grafanalib.core import GridPos, Panel, RowPanel

GRID_WIDTH = 24  # Grafana's dashboard is 24 columns wide


class _Cursor:
    """Fills rows of the grid left to right; a panel that does not fit starts the next line."""

    def __init__(self) -> None:
        self.x = self.y = self.line_height = 0

    def place(self, width: int, height: int) -> GridPos:
        if self.x + width > GRID_WIDTH:
            self.newline()
        pos = GridPos(h=height, w=width, x=self.x, y=self.y)
        self.x += width
        self.line_height = max(self.line_height, height)
        return pos

    def newline(self) -> None:
        self.y += self.line_height
        self.x = self.line_height = 0


def arrange(sections: Sequence[tuple[str, Sequence[Panel]]]) -> list[Panel]:
    """One full-width row header per section, then its panels, each keeping the width and height it was built
    with (`gridPos.w`, `gridPos.h`) and getting its x and y here."""
    cursor = _Cursor()
    out: list[Panel] = []
    for title, panels in sections:
        cursor.newline()
        out.append(RowPanel(title=title, gridPos=cursor.place(GRID_WIDTH, 1)))
        cursor.newline()
        for panel in panels:
            size = panel.gridPos
            out.append(attr.evolve(panel, gridPos=cursor.place(size.w, size.h)))
    return out
