"""numpy arrays inside messages, between instances."""
import numpy as np
import pytest

from ether import ether

from conftest import shm_objects

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
          "float16", "float32", "float64", "complex64", "complex128"]


@pytest.fixture
def echo3():
    ether.tap(config={"instances": {f"e{i}": {"class_path": "apps.ArrayEcho"} for i in range(3)}})
    sid = ether.session
    yield
    ether.shutdown()
    assert shm_objects(sid) == []


def _sample(dtype: str, shape) -> np.ndarray:
    rng = np.random.default_rng(abs(hash((dtype, shape))) % 2**32)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith("complex"):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


def test_every_dtype_and_shape_arrives_intact_read_only_at_three_subscribers(echo3):
    with ether.listen("echoes", timeout=10) as echoes:
        sent = []
        for dtype in DTYPES:
            for shape in [(), (0,), (7,), (3, 4), (2, 3, 4)]:
                frame = _sample(dtype, shape)
                sent.append(frame)
                ether.pub({"frame": frame, "extra": {"nested": frame[..., None] if shape else frame},
                           "label": f"{dtype}{shape}"}, topic="frames")
        got = {}
        for _ in range(3 * len(sent)):
            echo = next(echoes)
            got.setdefault(echo["label"], []).append(echo)
    for frame in sent:
        label = f"{frame.dtype}{frame.shape}"
        assert len(got[label]) == 3 and len({e["pid"] for e in got[label]}) == 3
        for echo in got[label]:
            assert echo["writeable"] is False  # what the subscriber received was read-only
            assert echo["frame"].dtype == frame.dtype and echo["frame"].shape == frame.shape
            assert np.array_equal(echo["frame"], frame)


def test_non_contiguous_input_and_mutation_after_publish(echo3):
    big = np.arange(100, dtype=np.float64).reshape(10, 10)
    view = big[::2, 1::3]  # not contiguous
    with ether.listen("echoes", timeout=10) as echoes:
        ether.pub({"frame": view, "extra": {}}, topic="frames")
        expected = view.copy()
        big[:] = -1  # the publisher changes its array after publishing
        for _ in range(3):
            assert np.array_equal(next(echoes)["frame"], expected)


def test_object_arrays_are_refused_at_publish_time(echo3):
    with pytest.raises(TypeError, match="cannot publish an array of dtype object"):
        ether.pub({"frame": np.array([object(), 1]), "extra": {}}, topic="frames")


def test_a_list_sent_for_an_array_parameter_is_coerced(echo3):
    with ether.listen("echoes", timeout=10) as echoes:
        ether.pub({"frame": [[1, 2], [3, 4]], "extra": {}}, topic="frames")
        echo = next(echoes)
    assert np.array_equal(echo["frame"], [[1, 2], [3, 4]]) and echo["writeable"] is False


def test_a_message_above_the_inbox_record_limit_travels_through_the_arena(echo3):
    blob = bytes(range(256)) * 8000   # 2 MB: more than an inbox record (1 MiB)
    with ether.listen("echoes", timeout=10) as echoes:
        assert ether.pub({"frame": np.zeros(3), "extra": {"blob": blob}}, topic="frames") == 3
        got = [next(echoes) for _ in range(3)]
    assert all(g["extra"]["blob"] == blob for g in got)
    assert len({g["pid"] for g in got}) == 3


def test_a_message_larger_than_the_arena_names_the_topic_and_the_fix(monkeypatch):
    import ether as ether_pkg
    monkeypatch.setenv("ETHER_ARENA_BYTES", str(4 << 20))
    ether.tap(config={"instances": {"e0": {"class_path": "apps.ArrayEcho"}}})
    sid = ether.session
    try:
        with pytest.raises(ether_pkg.ArenaFull,
                           match=r"a message on topic 'frames' is \d+ bytes, more than an inbox record "
                                 r"takes, and it does not fit the array arena: .*raise ETHER_ARENA_BYTES"):
            ether.pub({"frame": np.zeros(3), "extra": {"blob": b"x" * (6 << 20)}}, topic="frames")
        with ether.listen("echoes", timeout=10) as echoes:   # and the session goes on
            ether.pub({"frame": np.ones(2), "extra": {}}, topic="frames")
            assert np.array_equal(next(echoes)["frame"], [1, 1])
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []


def test_the_arenas_of_stopped_instances_are_freed_after_shutdown_returns(monkeypatch):
    """A shutdown keeps the arenas of the instances it stopped until every process
    is gone, then lets them go in a thread of its own: nothing of the session,
    not even an open descriptor of an unlinked arena, is left behind."""
    import os

    from conftest import wait_for
    from ether._core import _arena_writer
    kept = []
    remove = _arena_writer.remove_dead_arenas

    def removing(session, keep=None):
        names = remove(session, keep)
        if keep is not None:
            kept.extend(names)
        return names

    monkeypatch.setattr(_arena_writer, "remove_dead_arenas", removing)
    ether.tap(config={"instances": {"e0": {"class_path": "apps.ArrayEcho"}}})
    sid = ether.session
    with ether.listen("echoes", timeout=10) as echoes:
        ether.pub({"frame": np.arange(1 << 17, dtype=np.float64), "extra": {}}, topic="frames")
        assert next(echoes)["frame"][-1] == (1 << 17) - 1   # 1 MiB: e0's arena, mapped here
    ether.shutdown()
    assert shm_objects(sid) == []
    assert len(kept) == 1 and "_a" in kept[0]    # e0's arena: kept, freed after the return

    def held():
        links = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                pass
        return [link for link in links if sid in link]

    assert wait_for(lambda: not held(), 10) is not None, held()
