"""The bridge between trusted tests and untrusted learner code (academy/bridge)."""

from __future__ import annotations

import time

import pytest

from academy.bridge.client import (
    Learner,
    LearnerCrashed,
    LearnerException,
    LearnerTimeout,
    Limits,
    Remote,
    expr,
)
from academy.bridge.worker import strip_magics

LIBRARY = """
import os, sys
class Box:
    def __init__(self, value):
        self.value = value
    def get(self):
        return self.value
    def put(self, value):
        self.value = value
class AlwaysEqual:
    def __eq__(self, other):
        return True
    def __bool__(self):
        return True
class Text(str):
    def __eq__(self, other):
        return True
    __hash__ = str.__hash__
def echo(*args, **kwargs):
    return [list(args), kwargs]
def boom():
    raise KeyError("missing-thing")
def spin():
    while True:
        pass
def hog():
    data = []
    while True:
        data.append(b"x" * (32 * 2**20))
def leave():
    os._exit(7)
def leave_politely():
    sys.exit(3)
print("learner output goes nowhere the grader reads")
print("nor does this", file=sys.stderr)
"""


def cells(*sources):
    return [{"index": i, "label": f"cell {i}", "source": s} for i, s in enumerate(sources)]


@pytest.fixture
def learner():
    with Learner(cells(LIBRARY), Limits(call_seconds=2, load_seconds=5, memory_mb=512)) as bridge:
        yield bridge


def test_plain_data_comes_back_with_exact_types(learner):
    result = learner.echo(1, True, 2.5, None, "é", [1, [2]], {"a": {"b": None}}, (1, 2), k=2**80)
    assert result == [[1, True, 2.5, None, "é", [1, [2]], {"a": {"b": None}}, (1, 2)], {"k": 2**80}]
    args = result[0]
    assert [type(a) for a in args[:4]] == [int, bool, float, type(None)]
    assert type(args[7]) is tuple


def test_special_floats_and_reserved_keys_survive(learner):
    nan, inf = learner.echo(float("nan"), float("-inf"))[0]
    assert nan != nan and inf == float("-inf")
    tricky = {"__f0__": "handle", "id": 1}
    assert learner.echo(tricky)[0][0] == tricky


def test_objects_stay_in_the_worker_as_remotes(learner):
    box = learner.Box([1])
    assert isinstance(box, Remote) and box.remote_type == "Box"
    box.put({"x": 1})
    assert box.get() == {"x": 1}
    assert box.value.value() == {"x": 1}
    box.value = [3]
    assert box.get() == [3]


def test_an_always_equal_object_never_equals_anything(learner):
    for name in ("AlwaysEqual",):
        obj = getattr(learner, name)()
        assert obj != 1 and obj != "anything" and obj != obj.remote_type
        with pytest.raises(TypeError):
            bool(obj)
    text = learner.Text("x")
    assert isinstance(text, Remote)  # a str subclass is not plain data
    assert text != "x"


def test_learner_exceptions_carry_type_and_message(learner):
    with pytest.raises(LearnerException) as info:
        learner.boom()
    assert info.value.type == "KeyError"
    assert info.value.is_a("LookupError") and not info.value.is_a("TypeError")
    assert "missing-thing" in info.value.message
    assert "cell 0" in info.value.where


def test_sys_exit_is_an_answer_not_a_crash(learner):
    with pytest.raises(LearnerException) as info:
        learner.leave_politely()
    assert info.value.type == "SystemExit"
    assert learner.echo(1) == [[1], {}]


def test_a_hang_times_out_and_the_next_call_gets_a_fresh_worker(learner):
    start = time.monotonic()
    with pytest.raises(LearnerTimeout):
        learner.spin()
    assert time.monotonic() - start < 5
    assert learner.echo("again") == [["again"], {}]
    assert learner.restarts == 1


def test_os_exit_is_reported_and_survived(learner):
    with pytest.raises(LearnerCrashed, match="exit code 7"):
        learner.leave()
    assert learner.echo(2) == [[2], {}]


def test_memory_is_capped():
    with Learner(cells(LIBRARY), Limits(call_seconds=20, memory_mb=512)) as learner:
        with pytest.raises(LearnerException) as info:
            learner.hog()
        assert info.value.type == "MemoryError"
        assert learner.echo("still here") == [["still here"], {}]


def test_expr_and_keep_build_values_in_the_worker(learner):
    numbers = learner.keep([1, 2])
    assert isinstance(numbers, Remote)
    numbers.append(3)
    assert learner.builtin("list", numbers) == [1, 2, 3]
    assert learner.builtin("len", numbers) == 3
    assert learner.make(expr("{1, 2}")).remote_type == "set"
    with pytest.raises(TypeError):
        learner.echo({1, 2})  # the grader must say expr(...) to send a set


def test_a_missing_name_is_a_name_error(learner):
    with pytest.raises(LearnerException) as info:
        learner.not_defined_anywhere()
    assert info.value.type == "NameError"
    assert learner.has("Box") and not learner.has("not_defined_anywhere")


def test_cells_that_fail_to_load_are_reported_and_the_rest_still_load():
    bridge = Learner(
        cells(
            "def a():\n    return 1",
            "def broken(:\n    pass",
            "def b():\n    return 2",
            "raise RuntimeError('top-level failure')",
            "def c():\n    return 3",
        )
    )
    with bridge:
        assert (bridge.a(), bridge.b(), bridge.c()) == (1, 2, 3)
        problems = {p["cell"]: p["error"]["type"] for p in bridge.load_problems}
        assert problems == {1: "SyntaxError", 3: "RuntimeError"}


def test_a_cell_that_hangs_or_kills_the_worker_while_loading_is_left_out():
    bridge = Learner(
        cells(
            "def a():\n    return 1",
            "while True:\n    pass",
            "import os\nos._exit(1)",
            "def b():\n    return 2",
        ),
        Limits(load_seconds=1),
    )
    with bridge:
        assert (bridge.a(), bridge.b()) == (1, 2)
        left_out = {p["cell"]: p["error"]["type"] for p in bridge.load_problems}
        assert left_out == {1: "Timeout", 2: "ProcessEnded"}


def test_the_worker_does_not_see_the_graders_environment(monkeypatch):
    monkeypatch.setenv("F0_SECRET_FOR_TEST", "do-not-leak")
    with Learner(cells("import os, sys\nenv = dict(os.environ)\npath = list(sys.path)")) as b:
        assert "F0_SECRET_FOR_TEST" not in b.env
        assert "" not in b.path  # -I: the working folder is not importable


def test_the_sandbox_hides_the_course_and_the_network():
    from academy.bridge.sandbox import Sandbox

    if not Sandbox("auto").active:
        pytest.fail("bubblewrap is not installed: .ci/run installs it (apt-get install bubblewrap)")
    probe = (
        "import os, socket\n"
        "def look(path):\n    return os.path.exists(path)\n"
        "def connect():\n"
        "    try:\n"
        "        socket.create_connection(('1.1.1.1', 80), timeout=1)\n"
        "        return 'connected'\n"
        "    except OSError as exc:\n"
        "        return type(exc).__name__\n"
        "def pid():\n    return os.getpid()\n"
    )
    from course_tools import ROOT

    with Learner(cells(probe), Limits(sandbox="require")) as sandboxed:
        assert sandboxed.look(str(ROOT / "academy")) is True  # installed code is readable
        for hidden in ("autograder", "curriculum", "solutions", "course.yaml", "tests"):
            assert sandboxed.look(str(ROOT / hidden)) is False, hidden
        assert sandboxed.connect() != "connected"
        assert sandboxed.pid() < 10  # its own process namespace
    with Learner(cells(probe), Limits(sandbox="off")) as open_worker:
        assert open_worker.look(str(ROOT / "autograder")) is True


def test_learner_cells_do_not_inherit_the_workers_future_imports():
    source = (
        "from __future__ import annotations\nfrom dataclasses import dataclass\n"
        "@dataclass\nclass Point:\n    x: int\n"
    )
    with Learner(cells(source + "def build():\n    return Point(2).x\n")) as bridge:
        assert bridge.load_problems == []
        assert bridge.build() == 2


def test_magics_are_ignored_outside_a_kernel():
    assert strip_magics("%time x = 1\n!ls\ny = 2") == "\n\ny = 2"
    with Learner(cells("%matplotlib inline\nvalue = 41 + 1")) as bridge:
        assert bridge.value == 42


FORK_BOMB = """
import os, threading, time
def bomb():
    made = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(60)  # children stay, holding their slots
                os._exit(0)
            made += 1
    except OSError as exc:
        return [made, type(exc).__name__]
def threads(n):
    started = []
    for _ in range(n):
        t = threading.Thread(target=time.sleep, args=(5,), daemon=True)
        t.start()
        started.append(t)
    return len(started)
"""


def test_a_fork_bomb_meets_the_process_cap_and_dies_with_its_worker():
    from academy.bridge.cgroup import LearnerCgroup

    group = LearnerCgroup(8)
    if not group.create():
        pytest.fail("no pids cgroup can be made here (/sys/fs/cgroup/pids or cgroup v2 'pids')")
    group.remove()
    with Learner(cells(FORK_BOMB), Limits(call_seconds=10, max_processes=24)) as bridge:
        made, error = bridge.bomb()
        assert error == "BlockingIOError" and 0 < made < 24
        folder = bridge._cgroup.folders[0]
        assert int((folder / "pids.current").read_text()) >= made
    assert not folder.exists()  # closing the worker killed every child and removed the group
    with Learner(cells(FORK_BOMB), Limits(max_processes=64)) as bridge:
        assert bridge.threads(16) == 16  # an ordinary threaded exercise stays well inside


IDENTITY = """
class Store:
    def __init__(self):
        self.items = [1, 2]
    def shared(self):
        return self.items
    def copied(self):
        return list(self.items)
def same_list(store):
    return store.items
"""


def test_identity_and_copies_are_observable_with_live_results():
    with Learner(cells(IDENTITY), Limits(call_seconds=2, load_seconds=5)) as learner:
        store = learner.Store()
        shared, again, copy = store.shared.live(), store.shared.live(), store.copied.live()
        assert isinstance(shared, Remote) and shared.remote_type == "list"
        assert learner.same(shared, again) and not learner.same(shared, copy)
        assert learner.same(learner.same_list.live(store), store.items.live_value())
        assert store.shared() == [1, 2]  # the plain call still answers with plain data
        copy.append(3)  # the list's own method, run in the worker
        assert store.shared() == [1, 2]
        shared.append(3)
        assert store.shared() == [1, 2, 3]
        with pytest.raises(TypeError):
            learner.same(shared, [1, 2, 3])


def test_the_worker_drops_an_object_once_no_handle_refers_to_it(learner):
    """A dropped ``Remote`` is released with the next request; a live one is kept, and a
    handle of an earlier worker (before a restart) never releases the new worker's objects."""
    import gc

    kept, dropped = learner.Box(1), learner.Box(2)
    kept_id, dropped_id = kept._id, dropped._id
    del dropped
    gc.collect()
    assert learner.echo(1) == [[1], {}]  # carries the release
    assert learner._request({"op": "same", "ids": [kept_id, kept_id]}) is True
    with pytest.raises(LearnerException):  # the worker no longer has it
        learner._request({"op": "same", "ids": [dropped_id, dropped_id]})
    with pytest.raises(LearnerTimeout):
        learner.spin()  # a fresh worker next time
    fresh = learner.Box(3)
    old = kept._id
    del kept
    gc.collect()
    learner.echo(2)
    assert fresh._id == old  # the new worker numbers its handles from the start again
    assert fresh.get() == 3  # ... and the old worker's release did not drop this one


def test_the_wire_format_round_trips_and_bounds_depth():
    """academy.bridge.protocol: both sides' one encoder and decoder."""
    from academy.bridge.protocol import MAX_DEPTH, TAG, decode, encode

    value = {"a": (1, [2.5, float("inf")]), TAG: None, "s": "x"}
    wire = encode(value, leaf=lambda v: {TAG: "handle", "id": 1})
    assert decode(wire, tagged=lambda obj: ("handle", obj["id"])) == value
    assert encode({1: "x"}, leaf=lambda v: "leaf") == "leaf"  # the worker keeps it live
    assert encode({1: "x"}, leaf=lambda v: "leaf", str_keys=True) == {"1": "x"}  # the grader
    deep: list = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    assert "leaf" in repr(encode(deep, leaf=lambda v: "leaf"))  # deeper than the bound: a leaf
    nested: object = (0,)
    for _ in range(MAX_DEPTH - 1):
        nested = (nested,)  # an honest worker's deepest answer decodes
    assert decode(encode(nested, leaf=repr), tagged=repr) == nested
    hostile: object = []
    for _ in range(5 * MAX_DEPTH):
        hostile = [hostile]
    with pytest.raises(ValueError, match="nested"):
        decode(hostile, tagged=repr)


def test_a_loaded_recipe_comes_back_as_the_plain_dict_it_is(tmp_path):
    """framework0's LoadedRecipe is a dict carrying YAML lines: a learner who returns one
    where a mapping is asked for gets the same answer as with yaml.safe_load."""
    (tmp_path / "r.yaml").write_text("steps:\n  - {idx: 1, name: a, module: m, function: f}\n")
    path = str(tmp_path / "r.yaml")
    source = f"from framework0 import load_recipe\ndef read():\n    return load_recipe({path!r})\n"
    with Learner(cells(source), Limits(call_seconds=5, load_seconds=20, sandbox="off")) as learner:
        assert learner.read() == {
            "steps": [{"idx": 1, "name": "a", "module": "m", "function": "f"}]
        }
