"""DependencyGraph: deterministic order, named cycles and unknown tasks, Mermaid output."""

from __future__ import annotations

import pytest

from framework0.dependency_graph import DependencyGraph
from framework0.errors import CycleError, GraphError, UnknownTaskError


def build(*tasks: tuple[str, list[str]]) -> DependencyGraph:
    graph = DependencyGraph()
    for name, deps in tasks:
        graph.add_task(name, deps)
    return graph


def test_seed_usage() -> None:
    graph = DependencyGraph()
    graph.add_task("step1", [])
    graph.add_task("step2", ["step1"])
    assert graph.get_task_order() == ["step1", "step2"]


def test_dependencies_may_be_added_later() -> None:
    graph = build(("report", ["load"]), ("load", []))
    assert graph.get_task_order() == ["load", "report"]


def test_ties_go_to_the_task_added_first() -> None:
    assert build(("c", []), ("a", []), ("b", [])).get_task_order() == ["c", "a", "b"]
    # b becomes ready after a and was added before c, so it runs before c
    # (graphlib's batch order alone would give a, c, b).
    graph = build(("b", ["a"]), ("a", []), ("c", []))
    assert graph.get_task_order() == ["a", "b", "c"]
    assert all(graph.get_task_order() == ["a", "b", "c"] for _ in range(5))


def test_diamond_order() -> None:
    graph = build(("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["c", "b"]))
    assert graph.get_task_order() == ["a", "b", "c", "d"]


def test_cycle_names_the_cycle_from_dependency_to_dependent() -> None:
    graph = build(("ok", []), ("a", ["c"]), ("b", ["a"]), ("c", ["b"]))
    with pytest.raises(CycleError) as info:
        graph.get_task_order()
    assert str(info.value) == "dependency cycle: a -> b -> c -> a"
    assert info.value.cycle == ["a", "b", "c", "a"]
    assert isinstance(info.value, GraphError) and isinstance(info.value, ValueError)


def test_two_task_and_self_cycles() -> None:
    with pytest.raises(CycleError, match=r"^dependency cycle: a -> b -> a$"):
        build(("a", ["b"]), ("b", ["a"])).get_task_order()
    with pytest.raises(CycleError, match=r"^dependency cycle: x -> x$"):
        build(("x", ["x"])).get_task_order()


def test_unknown_dependency_names_it_and_its_dependent() -> None:
    with pytest.raises(UnknownTaskError) as info:
        build(("a", []), ("b", ["a", "ghost"])).get_task_order()
    assert str(info.value) == "unknown task 'ghost' (needed by 'b')"
    assert info.value.name == "ghost"
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize(
    "method",
    ["get_task_dependencies", "get_task_dependents", "remove_task", "ancestors", "descendants"],
)
def test_unknown_task_lookups_name_the_task(method: str) -> None:
    graph = build(("a", []))
    with pytest.raises(UnknownTaskError, match="'nope'"):
        getattr(graph, method)("nope")


def test_dependencies_and_dependents_are_direct_and_copied() -> None:
    graph = build(("a", []), ("b", ["a"]), ("c", ["b", "a"]))
    assert graph.get_task_dependencies("c") == ["b", "a"]
    assert graph.get_task_dependents("a") == ["b", "c"]
    assert graph.get_task_dependents("c") == []
    graph.get_task_dependencies("c").append("zzz")
    assert graph.get_task_dependencies("c") == ["b", "a"]


def test_ancestors_and_descendants_are_transitive_in_added_order() -> None:
    # e <- d <- {b, c} <- a, and x on its own; added out of order on purpose.
    graph = build(("d", ["c", "b"]), ("a", []), ("x", []), ("c", ["a"]), ("b", ["a"]))
    graph.add_task("e", ["d"])
    assert graph.ancestors("e") == ["d", "a", "c", "b"]
    assert graph.ancestors("d") == ["a", "c", "b"]
    assert graph.ancestors("a") == [] and graph.ancestors("x") == []
    assert graph.descendants("a") == ["d", "c", "b", "e"]
    assert graph.descendants("c") == ["d", "e"]
    assert graph.descendants("e") == [] and graph.descendants("x") == []
    graph.ancestors("e").append("zzz")  # a fresh list each time
    assert graph.ancestors("e") == ["d", "a", "c", "b"]


def test_ancestors_and_descendants_end_on_cycles() -> None:
    graph = build(("a", ["c"]), ("b", ["a"]), ("c", ["b"]), ("d", ["a"]), ("x", ["x"]))
    assert graph.ancestors("a") == ["a", "b", "c"]  # on the cycle: its own ancestor
    assert graph.ancestors("d") == ["a", "b", "c"]
    assert graph.descendants("a") == ["a", "b", "c", "d"]
    assert graph.descendants("d") == []
    assert graph.ancestors("x") == graph.descendants("x") == ["x"]


def test_ancestors_name_a_dependency_that_was_never_added() -> None:
    graph = build(("a", []), ("b", ["a", "ghost"]), ("c", ["b"]))
    with pytest.raises(UnknownTaskError) as info:
        graph.ancestors("c")
    assert str(info.value) == "unknown task 'ghost' (needed by 'b')"
    assert graph.ancestors("a") == []
    assert graph.descendants("a") == ["b", "c"]  # walks dependents only: no ghost on the way
    graph.add_task("ghost", [])
    assert graph.ancestors("c") == ["a", "b", "ghost"]


def test_remove_task_drops_it_from_other_tasks() -> None:
    graph = build(("a", []), ("b", ["a"]), ("c", ["b"]))
    graph.remove_task("b")
    assert "b" not in graph and graph.tasks == ["a", "c"]
    assert graph.get_task_dependencies("c") == []
    assert graph.get_task_order() == ["a", "c"]


def test_readding_replaces_dependencies_and_keeps_position() -> None:
    graph = build(("a", []), ("b", ["a"]), ("c", []))
    graph.add_task("a", ["c"])
    assert graph.tasks == ["a", "b", "c"]
    assert graph.get_task_order() == ["c", "a", "b"]


def test_bad_arguments_are_type_errors() -> None:
    graph = DependencyGraph()
    with pytest.raises(TypeError, match=r"write \['a'\]"):
        graph.add_task("b", "a")
    with pytest.raises(TypeError, match="task name"):
        graph.add_task("", [])
    with pytest.raises(TypeError, match="dependency of 'b'"):
        graph.add_task("b", [1])  # type: ignore[list-item]


def test_visualize_mermaid() -> None:
    graph = build(("load", []), ("report", ["load"]), ("end", []), ('odd "name"', ["load"]))
    assert graph.visualize() == (
        "graph TD\n"
        "    load\n"
        "    report\n"
        '    t2["end"]\n'
        '    t3["odd #quot;name#quot;"]\n'
        "    load --> report\n"
        "    load --> t3"
    )


def test_mimebundle_renders_mermaid_in_jupyterlab() -> None:
    graph = build(("a", []), ("b", ["a"]))
    bundle = graph._repr_mimebundle_()
    assert bundle["text/markdown"] == "```mermaid\ngraph TD\n    a\n    b\n    a --> b\n```"
    assert bundle["text/plain"] == repr(graph) == "<DependencyGraph 2 tasks [a, b], 1 dependencies>"
    assert len(graph) == 2 and "a" in graph and "z" not in graph
