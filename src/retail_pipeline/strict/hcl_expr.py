"""Splitting the Terraform expressions python-hcl2 leaves as text: conditionals and parentheses.

python-hcl2 returns ``a ? b : c`` as the string ``a ? b : c`` (inside ``${...}``). The strict layer
reads the grants that depend on a flag (the CMEK grants of terraform/kms.tf) by looking at each
branch, so it needs the top-level ``?`` and ``:`` of an expression: the ones outside brackets,
parentheses, braces and string literals (string templates ``"...${x ? y : z}..."`` included).
"""

from __future__ import annotations

import re

_OPEN = {"(": ")", "[": "]", "{": "}"}
_SPLAT = re.compile(r"^one\((.+)\[\*\]\.(\w+)\)$")  # one(x[*].email): the resource has count 0 or 1
_INDEX0 = re.compile(r"^(.+)\[0\]\.(\w+)$")


def _top_level(expr: str) -> list[tuple[int, str]]:
    """Positions of ``?`` and ``:`` outside any bracket or string literal of EXPR."""
    found: list[tuple[int, str]] = []
    stack: list[str] = []  # expected closers: ")", "]", "}", '"' (in a string), "}" of a ${...} template
    i = 0
    while i < len(expr):
        char = expr[i]
        if stack and stack[-1] == '"':
            if char == "\\":
                i += 1
            elif char == '"':
                stack.pop()
            elif expr.startswith("${", i) or expr.startswith("%{", i):
                stack.append("}")
                i += 1
        elif char == '"':
            stack.append('"')
        elif char in _OPEN:
            stack.append(_OPEN[char])
        elif char in ")]}":
            if not stack or stack[-1] != char:
                raise ValueError(f"unbalanced {char!r} at {i} in {expr!r}")
            stack.pop()
        elif not stack and char in "?:":
            found.append((i, char))
        i += 1
    if stack:
        raise ValueError(f"unclosed {stack[-1]!r} in {expr!r}")
    return found


def strip_parens(expr: str) -> str:
    """EXPR without whitespace and without parentheses that enclose all of it: ``((a ? b : c))`` -> ``a ? b : c``."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        depth, closes = 0, -1
        for position, char in enumerate(expr):
            depth += (char == "(") - (char == ")")
            if depth == 0:
                closes = position
                break
        if closes != len(expr) - 1:  # "(a) ? (b) : (c)": the first parenthesis closes early
            return expr
        expr = expr[1:-1].strip()
    return expr


def split_conditional(expr: str) -> tuple[str, str, str] | None:
    """``(condition, if_true, if_false)`` when EXPR (parentheses stripped) is a conditional, else None.

    Nested conditionals stay whole in their branch: ``a ? b ? c : d : e`` -> (``a``, ``b ? c : d``, ``e``).
    """
    expr = strip_parens(expr)
    marks = _top_level(expr)
    if not marks or marks[0][1] != "?":
        return None
    open_questions = 0
    for position, mark in marks:
        open_questions += 1 if mark == "?" else -1
        if open_questions == 0:
            question = marks[0][0]
            return (
                expr[:question].strip(),
                strip_parens(expr[question + 1 : position]),
                strip_parens(expr[position + 1 :]),
            )
    raise ValueError(f"a conditional without its ':' in {expr!r}")


def unsplat(expr: str) -> str:
    """``one(x[*].email)`` and ``x[0].email`` -> ``x.email`` (a resource with count 0 or 1)."""
    match = _SPLAT.match(expr) or _INDEX0.match(expr)
    return f"{match[1]}.{match[2]}" if match else expr
