"""How deeply a parsed JSON value nests: checked before libraries that recurse are handed it."""

from __future__ import annotations


def nesting_depth_exceeds(value: object, limit: int) -> bool:
    """Whether ``value`` has containers nested more than ``limit`` deep (a scalar is depth 0).

    Iterative, so it answers for values far deeper than the interpreter's recursion limit.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: list[object] = list(node.values())
        elif isinstance(node, list | tuple):
            children = list(node)
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
