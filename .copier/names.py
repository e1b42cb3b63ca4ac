"""Render this working repository as a copier template, by pattern (docs/template.md).

The repository root is a working project: its files hold our names (the import package, the
distribution, the service class), never Jinja placeholders. copier.yml makes every file a
template (`_templates_suffix: ""`) and loads this Jinja extension, whose ``preprocess`` turns
each file into a template that prints the file as it is, except that

- each of our names becomes the matching answer (``NAMES``), in file contents and in paths,
  so a module added tomorrow under ``src/mlops_template/`` is renamed with no list to update;
- a comment line ``# [copier] if EXPR`` / ``elif EXPR`` / ``else`` / ``endif`` (or the same in
  ``<!-- ... -->``) opens or closes a block kept only when the answers say so;
- ``# [copier] put: TEXT`` writes TEXT (Jinja, with the answers) as a line of the generated
  file, and ``# [copier] next: TEXT`` also drops the line after it (a title, a description).

Everything else, ``{{ ... }}`` and ``{% ... %}`` of workflows and dashboards included, is
copied byte for byte. copier renders the old and the new template version with this same
extension when it updates a project, so its three-way merge compares like with like.
"""

from __future__ import annotations

import re

from jinja2.ext import Extension

# Our name -> the answer that replaces it. Longest first: one alternation, no overlaps.
NAMES = {
    "mlops_template": "package_name",
    "mlops-template": "distribution_name",
    "MlopsService": "service_class",
}
NAME = re.compile("|".join(re.escape(name) for name in NAMES))
DIRECTIVE = re.compile(
    r"^[ \t]*(?:#|<!--)[ \t]*\[copier\][ \t]+"
    r"(?:(?P<tag>if[ \t].*?|elif[ \t].*?|else|endif)|(?P<kind>put|next):[ \t]?(?P<text>.*?))"
    r"[ \t]*(?:-->)?[ \t]*(?:\r?\n|\Z)",
    re.M,
)
# The one file that is a Jinja template as it stands: copier's answers file.
ANSWERS_TEMPLATE = "{{ _copier_conf.answers_file }}"


def _raw(text: str) -> str:
    """``text`` printed as it is: raw blocks, with every ``{%`` printed by an expression so
    that no raw block can end early."""
    parts = text.split("{%")
    return '{{ "{%" }}'.join(f"{{% raw %}}{part}{{% endraw %}}" if part else "" for part in parts)


def _literal(text: str) -> str:
    out: list[str] = []
    pos = 0
    for match in NAME.finditer(text):
        out.append(_raw(text[pos : match.start()]))
        out.append(f"{{{{ {NAMES[match[0]]} }}}}")
        pos = match.end()
    out.append(_raw(text[pos:]))
    return "".join(out)


def to_template(source: str) -> str:
    """The Jinja source that renders ``source`` with our names replaced and directives run."""
    out: list[str] = []
    pos = 0
    for match in DIRECTIVE.finditer(source):
        if match.start() < pos:  # the line a `next:` dropped was itself a directive
            continue
        out.append(_literal(source[pos : match.start()]))
        pos = match.end()
        if match["tag"]:
            out.append(f"{{% {match['tag']} %}}")
            continue
        out.append(match["text"] + "\n")
        if match["kind"] == "next":
            newline = source.find("\n", pos)
            pos = len(source) if newline < 0 else newline + 1
    out.append(_literal(source[pos:]))
    return "".join(out)


class RenameExtension(Extension):
    """Files become :func:`to_template`; a path part (and any string copier renders from
    copier.yml) only has our names replaced."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is None:
            return NAME.sub(lambda match: f"{{{{ {NAMES[match[0]]} }}}}", source)
        if name == ANSWERS_TEMPLATE:
            return source
        return to_template(source)
