"""Grid placement: rows wrap at 24 columns and every section starts below everything before it."""

from __future__ import annotations

from grafanalib.core import GridPos, Text

from llm_dvfs.commands.dashboards.layout import arrange


def _panel(title: str, w: int, h: int) -> Text:
    return Text(title=title, gridPos=GridPos(h=h, w=w, x=0, y=0))


def test_panels_flow_left_to_right_and_wrap():
    placed = arrange([("first", [_panel("a", 12, 8), _panel("b", 12, 4), _panel("c", 8, 6)]),
                      ("second", [_panel("d", 24, 3)])])
    pos = {p.title: (p.gridPos.x, p.gridPos.y, p.gridPos.w, p.gridPos.h) for p in placed}
    assert pos["first"] == (0, 0, 24, 1)
    assert pos["a"] == (0, 1, 12, 8)
    assert pos["b"] == (12, 1, 12, 4)
    assert pos["c"] == (0, 9, 8, 6)  # below the taller of a and b
    assert pos["second"] == (0, 15, 24, 1)
    assert pos["d"] == (0, 16, 24, 3)
