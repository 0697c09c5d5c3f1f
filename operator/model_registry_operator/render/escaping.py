"""Escapes for values the kubelet or a template would otherwise interpret."""

from __future__ import annotations


def no_expansion(value: str) -> str:
    """A value for a container's args or env that the kubelet passes on literally.

    The kubelet expands `$(VAR)` in command, args and env values and turns `$$` into `$`, so
    doubling every `$` keeps any user value as written.
    """
    return value.replace("$", "$$")
