"""DependencyGraph: which task must run before which, in one deterministic order.

Ordering is delegated to the standard library's ``graphlib.TopologicalSorter``; this
class adds what a recipe runner needs on top: a reproducible order (ties go to the
task added first, so a recipe's ``idx`` order wins whenever dependencies allow it),
errors that name the cycle or the unknown task, every task a task needs or is needed
by (``ancestors`` / ``descendants``), and a Mermaid picture for notebooks.
"""

from __future__ import annotations

import graphlib
import heapq
import re
from collections.abc import Callable, Iterable
from typing import Any

from framework0.errors import CycleError, UnknownTaskError

__all__ = ["DependencyGraph"]

_MERMAID_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words Mermaid's flowchart grammar reserves; a node with one of these ids breaks the diagram.
_MERMAID_KEYWORDS = frozenset(
    {
        "end",
        "graph",
        "flowchart",
        "subgraph",
        "style",
        "class",
        "classdef",
        "click",
        "linkstyle",
        "direction",
        "default",
        "call",
        "href",
    }
)


class DependencyGraph:
    """Tasks and the tasks each one depends on.

    ``add_task`` may name dependencies that are added later; they only have to exist
    by the time the order is asked for. Re-adding a task replaces its dependencies
    and keeps its original position for tie-breaking.
    """

    def __init__(self) -> None:
        self._deps: dict[str, list[str]] = {}  # insertion order = tie-break order

    # ------------------------------------------------------------------ building
    def add_task(self, task_name: str, dependencies: Iterable[str] = ()) -> None:
        """Add ``task_name`` depending on ``dependencies`` (duplicates are ignored)."""
        _check_name(task_name, "task name")
        if isinstance(dependencies, str):  # "a" would otherwise be read as ["a"]'s letters
            raise TypeError(
                f"dependencies of {task_name!r} must be a list of names, got the string "
                f"{dependencies!r}; write [{dependencies!r}]"
            )
        deps: list[str] = []
        for dep in dependencies:
            _check_name(dep, f"dependency of {task_name!r}")
            if dep not in deps:
                deps.append(dep)
        self._deps[task_name] = deps

    def remove_task(self, task_name: str) -> None:
        """Remove ``task_name`` and drop it from every other task's dependencies."""
        self._require(task_name)
        del self._deps[task_name]
        for deps in self._deps.values():
            if task_name in deps:
                deps.remove(task_name)

    # ------------------------------------------------------------------ reading
    @property
    def tasks(self) -> list[str]:
        """Task names in the order they were added."""
        return list(self._deps)

    def __contains__(self, task_name: object) -> bool:
        return task_name in self._deps

    def __len__(self) -> int:
        return len(self._deps)

    def get_task_dependencies(self, task_name: str) -> list[str]:
        """The tasks ``task_name`` depends on directly."""
        return list(self._require(task_name))

    def get_task_dependents(self, task_name: str) -> list[str]:
        """The tasks that depend directly on ``task_name``, in the order they were added."""
        self._require(task_name)
        return [name for name, deps in self._deps.items() if task_name in deps]

    def ancestors(self, task_name: str) -> list[str]:
        """Every task ``task_name`` depends on, directly or through other tasks.

        Listed in the order the tasks were added. A task on a dependency cycle is among
        its own ancestors (the walk stops at tasks already seen, so it always ends).
        Raises ``UnknownTaskError`` for an unknown ``task_name`` and for a dependency on
        the way that was never added (``unknown task 'x' (needed by 'b')``).
        """
        return self._reach(task_name, self._dependencies_of)

    def descendants(self, task_name: str) -> list[str]:
        """Every task that depends on ``task_name``, directly or through other tasks.

        Listed in the order the tasks were added; a task on a dependency cycle is among
        its own descendants. Raises ``UnknownTaskError`` for an unknown ``task_name``.
        """
        dependents: dict[str, list[str]] = {name: [] for name in self._deps}
        for name, deps in self._deps.items():
            for dep in deps:
                dependents.setdefault(dep, []).append(name)
        return self._reach(task_name, dependents.__getitem__)

    def get_task_order(self) -> list[str]:
        """Every task after all of its dependencies; ties go to the task added first.

        Raises ``UnknownTaskError`` for a dependency that was never added and
        ``CycleError`` (message like ``dependency cycle: a -> b -> a``, arrows pointing
        from a dependency to its dependent) when no order exists.
        """
        for name, deps in self._deps.items():
            for dep in deps:
                if dep not in self._deps:
                    raise UnknownTaskError(dep, f" (needed by {name!r})")
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for name, deps in self._deps.items():
            sorter.add(name, *deps)
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            raise CycleError(self._rotate(list(exc.args[1]))) from None
        # graphlib hands out ready tasks in an unspecified order; a heap keyed by insertion
        # position makes the result depend only on how the graph was built.
        position = {name: i for i, name in enumerate(self._deps)}
        ready: list[tuple[int, str]] = []
        order: list[str] = []
        while sorter.is_active():
            for name in sorter.get_ready():
                heapq.heappush(ready, (position[name], name))
            _, name = heapq.heappop(ready)
            order.append(name)
            sorter.done(name)
        return order

    # ------------------------------------------------------------------ display
    def visualize(self) -> str:
        """Mermaid flowchart text, edges drawn from each dependency to its dependent."""
        ids: dict[str, str] = {}
        lines = ["graph TD"]

        def node(name: str) -> str:
            if name not in ids:
                ok = _MERMAID_ID.fullmatch(name) and name.lower() not in _MERMAID_KEYWORDS
                ids[name] = name if ok else f"t{len(ids)}"
                label = name.replace('"', "#quot;")
                lines.append(f"    {ids[name]}" if ok else f'    {ids[name]}["{label}"]')
            return ids[name]

        for name in self._deps:
            node(name)
        for name, deps in self._deps.items():
            for dep in deps:
                lines.append(f"    {node(dep)} --> {node(name)}")
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """JupyterLab 4 renders the markdown Mermaid fence as a diagram."""
        return {
            "text/markdown": f"```mermaid\n{self.visualize()}\n```",
            "text/plain": repr(self),
        }

    def __repr__(self) -> str:
        names = list(self._deps)
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        edges = sum(len(d) for d in self._deps.values())
        return f"<DependencyGraph {len(names)} tasks [{shown}], {edges} dependencies>"

    # ------------------------------------------------------------------ helpers
    def _require(self, task_name: str) -> list[str]:
        try:
            return self._deps[task_name]
        except (KeyError, TypeError):
            raise UnknownTaskError(task_name) from None

    def _dependencies_of(self, task_name: str) -> list[str]:
        """``task_name``'s direct dependencies, each of which must have been added."""
        deps = self._deps[task_name]
        for dep in deps:
            if dep not in self._deps:
                raise UnknownTaskError(dep, f" (needed by {task_name!r})")
        return deps

    def _reach(self, task_name: str, step: Callable[[str], list[str]]) -> list[str]:
        """The tasks reachable from ``task_name`` by one or more ``step``s, in added order."""
        self._require(task_name)
        seen: set[str] = set()
        todo = list(step(task_name))
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(step(name))
        return [name for name in self._deps if name in seen]

    def _rotate(self, cycle: list[str]) -> list[str]:
        """Start the cycle at its earliest-added task so the message is reproducible."""
        ring = cycle[:-1]
        position = {name: i for i, name in enumerate(self._deps)}
        start = min(range(len(ring)), key=lambda i: position.get(ring[i], len(position)))
        ring = ring[start:] + ring[:start]
        return ring + ring[:1]


def _check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{what} must be a non-empty str, got {name!r}")
