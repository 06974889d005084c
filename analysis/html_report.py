"""One self-contained HTML page: text, tables and PNGs embedded as base64 data URIs."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.kv td:first-child { text-align: left; font-weight: 600; background: #fafafa; }
.note { color: #666; font-size: 0.9em; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
code { background: #f5f5f5; padding: 1px 4px; }
"""


@dataclass
class Section:
    """A heading and its body: HTML fragments, in order."""

    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, text: str, css: str = "") -> Section:
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def table(self, df: pd.DataFrame, float_format: str = "{:.4g}") -> Section:
        self.parts.append(df.to_html(index=False, border=0, na_rep="",
                                     float_format=float_format.format, escape=True))
        return self

    def pairs(self, rows: Sequence[tuple[str, str]]) -> Section:
        body = "".join(f"<tr><td>{html.escape(k)}</td><td class='l'>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        self.parts.append(f"<table class='kv'>{body}</table>")
        return self

    def image(self, png: str | Path, alt: str) -> Section:
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        self.parts.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">')
        return self


def render_html(title: str, sections: Sequence[Section]) -> str:
    body = "\n".join(f"<h2>{html.escape(s.title)}</h2>\n" + "\n".join(s.parts) for s in sections)
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n"
            "</body></html>\n")


def write_html(path: str | Path, title: str, sections: Sequence[Section]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(title, sections), encoding="utf-8")
    return path
