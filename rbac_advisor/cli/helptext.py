"""Command help texts for the terminal: prose reflows, examples keep their lines."""

from __future__ import annotations


def reflow(text: str) -> str:
    """Each prose paragraph on one line, so the terminal wraps it at its own width.

    Paragraphs are separated by a blank line; a paragraph with an indented line (an
    example) keeps its line breaks.
    """
    out = []
    for para in text.strip().split("\n\n"):
        lines = para.split("\n")
        if any(line.startswith(" ") for line in lines):
            out.append(para)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)
