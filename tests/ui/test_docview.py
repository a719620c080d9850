"""The scrubber's detail pane (DocView) shows a document exactly as the Log it replaced did:
same lines, same look; and a new document repaints only the rows that changed."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.widgets import Log

from console.widgets.docview import DocView

AWKWARD = ["── event ──", "{", '  "a": 1,', "", "\tindented\ttabs", "two\u2028lines", "bell\x07here",
           "wide 漢字 text", "nbsp\xa0here", "carriage\rreturn", "", "}"]


class Side(App):
    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Log(id="log", auto_scroll=False)
            yield DocView(id="doc")


def _text(widget, height: int) -> list[str]:
    return [widget.render_line(y).text.rstrip() for y in range(height)]


def test_a_document_reads_and_draws_as_the_log_drew_it():
    async def main():
        app = Side()
        async with app.run_test(size=(80, 20)) as pilot:
            log, doc = app.query_one(Log), app.query_one(DocView)
            for lines in (AWKWARD, ["plain", "", "ascii only"], [f"line {i}" for i in range(50)], AWKWARD):
                log.clear()
                log.write_lines(lines)
                doc.show(lines)
                await pilot.pause()
                assert doc.lines == log.lines
                assert _text(doc, 15) == _text(log, 15)
                assert doc.virtual_size.height == log.virtual_size.height

    asyncio.run(main())


def test_a_new_document_repaints_only_the_rows_that_changed():
    async def main():
        app = Side()
        async with app.run_test(size=(80, 20)) as pilot:
            doc = app.query_one(DocView)
            first = [f"row {i}" for i in range(40)]
            doc.show(first)
            await pilot.pause()
            drawn: list[int] = []
            render_line = doc.render_line
            doc.render_line = lambda y: drawn.append(y) or render_line(y)
            doc.show(first[:3] + ["changed"] + first[4:])
            await pilot.pause()
            assert drawn == [3]
            assert doc.lines[3] == "changed" and doc.render_line(3).text.startswith("changed")

    asyncio.run(main())


def test_a_scrollbar_is_redrawn_only_when_its_thumb_changes():
    async def main():
        app = Side()
        async with app.run_test(size=(80, 20)) as pilot:
            doc = app.query_one(DocView)
            doc.show([f"row {i}" for i in range(5000)])
            await pilot.pause()
            bar = doc.vertical_scrollbar
            drawn: list[int] = []
            render = bar.render
            bar.render = lambda: drawn.append(1) or render()
            doc.show([f"row {i}" for i in range(4990)])  # the same thumb, one cell
            await pilot.pause()
            assert not drawn and bar.window_virtual_size == 4990 and doc.virtual_size.height == 4990
            doc.show([f"row {i}" for i in range(40)])  # half the bar
            await pilot.pause()
            assert drawn and bar.window_virtual_size == 40

    asyncio.run(main())
