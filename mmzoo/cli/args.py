"""Provides argparse value types that check ranges where they are declared, so a bad flag is a one-line usage error."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def schema_value(section: str, name: str) -> Callable[[str], object]:
    """A type for a flag that sets registry field ``section.name``: the schema's type and range apply."""
    from mmzoo.zoo import schema

    param = schema.param(section, name)
    convert = int if param.type == "int" else float

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {param.type}, got {text!r}") from None
        complaint = param.check(value)
        if complaint:
            raise argparse.ArgumentTypeError(complaint)
        return value

    parse.__name__ = param.type  # argparse names the type in its messages
    return parse


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """A type for an integer flag between ``low`` and ``high`` (inclusive)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {low} to {high}, got {value}" if high is not None
                                             else f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def safe_name(text: str) -> str:
    """A type for a flag naming a run folder: the registry's safe name pattern applies."""
    from mmzoo import names

    complaint = names.problem(text)
    if complaint:
        raise argparse.ArgumentTypeError(complaint)
    return text


def utf8_text(text: str) -> str:
    """A type for a flag holding text to tokenize: bytes that are not UTF-8 are a usage error, not a crash."""
    from mmzoo.textfile import utf8_problem

    problem = utf8_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(f"is not UTF-8 text: {problem}")
    return text
