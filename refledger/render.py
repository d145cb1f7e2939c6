"""Output for people (rich tables) and for programs (JSON, CSV), in one place.

Everything printed for people is plain text (STYLE §16): ids, names and
reasons come from events that any integration wrote, so no string is ever
read as rich markup (`[bold]`), emoji codes (`:smile:`) or highlighting, and
control characters (an ESC that would recolour or clear the terminal, a
newline that would split a table row) are shown escaped, as ``\x1b``. Our
own emphasis is a style on a part of a `line`, never markup inside a string.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import unicodedata
from typing import Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

FORMATS = ("table", "json", "csv")

# Unicode's bidirectional controls: they reorder what follows on the screen, so an id holding
# one could show another shop's name; shown escaped like the C0/C1 controls.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def plain(value) -> str:
    """``value`` as text for a terminal: control characters escaped (``\x1b``, ``\n``), the rest as it is."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if ch in _BIDI_CONTROLS or unicodedata.category(ch) == "Cc" else ch
        for ch in text)


class PlainConsole(Console):
    """A rich console for which every string is plain text (see the module's docstring)."""

    def render_str(self, text: str, **options) -> Text:
        options.update(markup=False, emoji=False, highlight=False)
        return super().render_str(plain(text), **options)


def console(stderr: bool = False) -> Console:
    """Terminal width on a terminal; wide enough for whole tables when piped."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 200
    return PlainConsole(stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=False, width=width)


def plain_lines(text) -> str:
    """`plain`, line by line: the line breaks are kept, every other control character escaped."""
    return "\n".join(plain(part) for part in str(text).split("\n"))


def echo(text: str) -> None:
    """Lines for people, written as they are (click, no rich), each as `plain` makes it."""
    click.echo(plain_lines(text))


def line(*parts) -> Text:
    """One line for people from its parts: a part is shown as plain text, a ``(part, style)`` pair
    in that rich style (``line(("ok", "green"), f": {count} chains")``)."""
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(plain(part[0]), style=part[1])
        else:
            text.append(plain(part))
    return text


def emit_json(value) -> None:
    click.echo(json.dumps(value, indent=1, ensure_ascii=False, sort_keys=False))


def emit_csv(rows: Iterable[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    click.echo(buf.getvalue(), nl=False)


def emit_table(rows: Sequence[dict], columns: Sequence[str], *, title: str | None = None,
               numeric: Iterable[str] = (), headers: dict[str, str] | None = None) -> None:
    """A table for people; ``numeric`` columns are right-aligned, ``headers`` names columns in the
    reader's language (default: the column's key)."""
    numeric = set(numeric)
    headers = headers or {}
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(headers.get(col, col), justify="right" if col in numeric else "left")
    for row in rows:
        table.add_row(*(_cell(row.get(col), col in numeric) for col in columns))
    console().print(table)


def _cell(value, numeric: bool) -> Text:
    """A cell as plain text: names and reasons from events are never read as rich markup (STYLE §16)."""
    if value is None:
        return Text("")
    if numeric and isinstance(value, int):
        return Text(f"{value:,}")
    return Text(plain(value))


def headers(columns: Sequence[str], locale: str) -> dict[str, str]:
    """Column names in the reader's language (`reports/words.py`)."""
    from refledger.reports.words import label

    return {column: label(column, locale) for column in columns}


def emit(rows: Sequence[dict], fmt: str, columns: Sequence[str], *, title: str | None = None,
         numeric: Iterable[str] = (), headers: dict[str, str] | None = None) -> None:
    if fmt == "json":
        emit_json(list(rows))
    elif fmt == "csv":
        emit_csv(rows, columns)
    else:
        emit_table(rows, columns, title=title, numeric=numeric, headers=headers)


def progress(enabled: bool | None = None):
    """A rich progress bar on stderr (disabled when stderr is not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if enabled is None:
        enabled = sys.stderr.isatty()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                    console=console(stderr=True), disable=not enabled, transient=False)


def emit_parquet(rows: Sequence[dict], types: dict, out: str | None) -> None:
    """Rows as a Parquet file with the given column types (name → pyarrow type), to ``out`` or stdout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: pa.array([row[name] for row in rows], type=typ) for name, typ in types.items()})
    if out:
        pq.write_table(table, out)
        return
    if sys.stdout.isatty():
        raise click.UsageError("Parquet is binary: give --out FILE or redirect the output to a file")
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    sys.stdout.buffer.write(buffer.getvalue())
    sys.stdout.flush()
