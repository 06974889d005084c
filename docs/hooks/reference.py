"""mkdocs hook: the reference pages, generated from the code at every build.

A page asks for a generated block with a line of its own:

    <!-- generated: cli search -->          one command's flags, from its own argparse parser
    <!-- generated: cli -->                 the command list of `vidtune --help`
    <!-- generated: config SearchConfig --> a config dataclass's fields: flag, default, help
    <!-- generated: api -->                 every name of vidtune.__all__: signature, docstring

Nothing is copied by hand: the parser is the one `vidtune COMMAND` builds (caught as its
parse_args is called), the fields and help are the dataclasses' own metadata, the docstrings
are the code's. An unknown directive fails the build.

After the build it also checks README.md's links, which mkdocs does not read: each must name
a file of the repository and, into docs/, an anchor the built page has.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import importlib
import inspect
import re
import typing
from pathlib import Path
from typing import Any

CONFIGS = ("SearchConfig", "DataConfig", "ModelConfig", "TrainConfig")   # tabled on config.md
DIRECTIVE = re.compile(r"^<!-- generated: (\w+)\s*(.*?) -->$", re.M)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return DIRECTIVE.sub(lambda m: render(m.group(1), m.group(2).split()), markdown)


def on_post_build(config: Any) -> None:
    root = Path(config["config_file_path"]).parent
    docs, site = Path(config["docs_dir"]), Path(config["site_dir"])
    bad = []
    for link in re.findall(r"\]\(([^)\s]+)\)", (root / "README.md").read_text()):
        if re.match(r"^[a-z]+:", link):
            continue   # a web address
        path, _, anchor = link.partition("#")
        target = (root / path).resolve()
        if not target.exists():
            bad.append(f"{link} (no such file)")
        elif anchor and target.suffix == ".md" and target.is_relative_to(docs.resolve()):
            page = site / target.relative_to(docs.resolve()).with_suffix(".html")
            if f'id="{anchor}"' not in page.read_text():
                bad.append(f"{link} (no anchor #{anchor} in {page.name})")
    if bad:
        raise ValueError("README.md links to what does not exist: " + "; ".join(bad)
                         + "; fix the link or the page")


def render(kind: str, args: list[str]) -> str:
    if kind == "cli":
        return cli_command(args[0]) if args else cli_index()
    if kind == "config":
        return config_table(_public(args[0]))
    if kind == "api":
        return api()
    raise ValueError(f"unknown generated block {kind!r}; known: cli, config, api")


# -- text ------------------------------------------------------------------------------------

def prose(text: str) -> str:
    """A docstring or help text as markdown: <, > and & escaped outside `code spans`, so
    'root/<class>/' stays visible instead of turning into an HTML tag."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p if p.startswith("`") else
                   p.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                   for p in parts)


def cell(text: str) -> str:
    """Text for a table cell: one line, pipes escaped."""
    return prose(" ".join(str(text).split())).replace("|", "\\|")


def code(text: str) -> str:
    return f"`{text}`" if text else ""


def _public(name: str) -> Any:
    import vidtune

    return getattr(vidtune, name)


# -- the command line ------------------------------------------------------------------------

class _Caught(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def parser_of(command: str) -> argparse.ArgumentParser:
    """The parser `vidtune COMMAND` builds: run its main() and catch the parser as main
    calls parse_args (nothing after that point runs)."""
    from vidtune.scripts.cli import COMMANDS

    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[command][0])
    original = argparse.ArgumentParser.parse_args

    def catch(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _Caught(self)

    argparse.ArgumentParser.parse_args = catch  # type: ignore[method-assign]
    try:
        module.main([], prog=f"vidtune {command}")
    except _Caught as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    raise RuntimeError(f"vidtune {command} never parsed its arguments")


def cli_index() -> str:
    from vidtune.scripts.cli import COMMANDS

    rows = [f"| [`vidtune {name}`](#vidtune-{name}) | {cell(help_)} |"
            for name, (_, help_) in COMMANDS.items()]
    return "\n".join(["| command | what it does |", "|---|---|", *rows])


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices:
        return " \\| ".join(f"`{c}`" for c in action.choices)
    if action.metavar:
        return code(str(action.metavar))
    return code(action.dest.upper()) if action.option_strings else ""


def cli_command(command: str) -> str:
    parser = parser_of(command)
    formatter = parser._get_formatter()
    out = [f"### `vidtune {command}`", ""]
    if parser.description:
        out += [prose(inspect.cleandoc(parser.description)), ""]
    out += ["```text", parser.format_usage().strip(), "```", ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions
                   if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        out += [f"**{group.title}**", "", "| flag | value | what it does |", "|---|---|---|"]
        for a in actions:
            name = ", ".join(f"`{o}`" for o in a.option_strings) or f"`{a.dest}`"
            text = formatter._expand_help(a) if a.help else ""
            out.append(f"| {name} | {_value(a)} | {cell(text)} |")
        out.append("")
    return "\n".join(out)


# -- the configs -----------------------------------------------------------------------------

def _type_name(hint: Any) -> str:
    if isinstance(hint, str):
        return hint
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")


def _comments(cls: type) -> dict[str, str]:
    """field -> the comment at the end of its line in the class's source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    found = re.findall(r"^\s+(\w+): [^\n#]*?#\s*(.+)$", source, re.M)
    return {name: comment.strip() for name, comment in found}


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        return code(repr(f.default))
    if f.default_factory is not dataclasses.MISSING:
        factory = f.default_factory
        return code(f"{getattr(factory, '__name__', 'factory')}()")
    return "required"


def config_table(cls: type) -> str:
    """One row per field. Flags come from scripts/_args.py's rule: fields with help are flags,
    --field-name unless metadata["flag"]; a search file's section is the flag's group."""
    from vidtune.scripts._args import _flag

    try:
        hints = typing.get_type_hints(cls)
    except NameError:   # a name imported only for type checkers: show the annotation's text
        hints = {f.name: f.type for f in dataclasses.fields(cls)}
    comments = _comments(cls)
    flags = any("help" in f.metadata for f in dataclasses.fields(cls))
    sections = any("group" in f.metadata for f in dataclasses.fields(cls))
    head = ["field", "type", "default"] + (["flag"] if flags else []) + \
        (["search file"] if sections else []) + ["what it is"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in dataclasses.fields(cls):
        row = [code(f.name), code(_type_name(hints[f.name])), _default(f)]
        if flags:
            row.append(code(_flag(f)) if "help" in f.metadata else "")
        if sections:
            group = f.metadata.get("group")
            row.append(code(f"[{str(group).lower()}] {f.name}") if group else "")
        row.append(cell(f.metadata.get("help") or comments.get(f.name, "")))
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


# -- the Python API --------------------------------------------------------------------------

def _doc(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""   # dataclasses' generated signature, not a docstring
    return prose(doc)


def _signature(name: str, obj: Any) -> str:
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def api() -> str:
    import vidtune

    out = []
    for name in vidtune.__all__:
        obj = getattr(vidtune, name)
        out += [f"### `vidtune.{name}`", ""]
        if inspect.isclass(obj):
            where = f"`{obj.__module__}.{obj.__qualname__}`"
            out += [f"class, defined as {where}", ""]
            if doc := _doc(obj):
                out += [doc, ""]
            if issubclass(obj, enum.Enum):
                out += ["| member | value |", "|---|---|"]
                out += [f"| `{m.name}` | `{m.value!r}` |" for m in obj]
                out.append("")
            elif name in CONFIGS:
                out += [f"Its fields: [Configs](config.md#{name.lower()}).", ""]
            elif dataclasses.is_dataclass(obj):
                out += [config_table(obj), ""]
            for attr, member in vars(obj).items():
                func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                if attr.startswith("_") or not inspect.isfunction(func) or not func.__doc__:
                    continue
                out += [f"**`{_signature(f'{name}.{attr}', func)}`**", "", _doc(func), ""]
        else:
            out += ["```python", _signature(f"vidtune.{name}", obj), "```", "",
                    f"defined in `{obj.__module__}`", ""]
            if doc := _doc(obj):
                out += [doc, ""]
    return "\n".join(out)
