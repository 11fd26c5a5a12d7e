"""The session directory: its documented layout, publisher adverts and member information."""
import re
import threading

import pytest

import ether
from ether._core import _directory as directory
from ether._node._node import Node

SMALL = {"capacity": 4096, "max_length": 64}


# ---- the layout ----

def _documented_tables() -> dict[str, list[tuple[int, int, str]]]:
    """(offset, size, field) of every field the module docstring lists, per table."""
    tables, current = {}, None
    for line in directory.__doc__.splitlines():
        heading = re.match(r"(Header|Inbox entry|Subscription|Advert)\b", line)
        if heading:
            current = tables.setdefault(heading.group(1), [])
            continue
        field = re.match(r"\s+(\d+) (u32|u64|(\d+) B) (\w+)", line)
        if field and current is not None:
            size = {"u32": 4, "u64": 8}.get(field.group(2)) or int(field.group(3))
            current.append((int(field.group(1)), size, field.group(4)))
    return tables


def test_the_docstring_documents_every_byte_of_every_table():
    tables = _documented_tables()
    sizes = {"Header": directory.HEADER_SIZE, "Inbox entry": directory.ENTRY_SIZE,
             "Subscription": directory.SUBSCRIPTION_SIZE, "Advert": directory.ADVERT_SIZE}
    assert set(tables) == set(sizes)
    for table, fields in tables.items():
        at = 0
        for offset, size, name in fields:
            assert offset == at, f"{table}.{name} is documented at {offset}, the previous field ends at {at}"
            at += size
        assert at == sizes[table], f"{table} documents {at} bytes of {sizes[table]}"


def test_the_documented_offsets_are_the_ones_the_code_uses():
    fields = {(t, name): offset for t, rows in _documented_tables().items() for offset, _, name in rows}
    assert fields["Header", "next_token"] == directory.NEXT_TOKEN_OFFSET
    assert fields["Header", "generation"] == directory.GENERATION_OFFSET
    assert fields["Inbox entry", "name"] == directory.ENTRY_NAME
    assert fields["Inbox entry", "state"] == directory.ENTRY_STATE
    assert fields["Inbox entry", "class_name"] == directory.ENTRY_CLASS
    assert fields["Subscription", "topic"] == directory.SUBSCRIPTION_TOPIC
    assert fields["Advert", "topic"] == directory.ADVERT_TOPIC
    header = directory.read_header(bytes(directory.HEADER_SIZE))._fields
    order = [name for _, _, name in _documented_tables()["Header"] if name != "reserved"]
    assert list(header) == order
    assert directory.SESSION_SIZE == (directory.HEADER_SIZE + directory.INBOX_ENTRIES * directory.ENTRY_SIZE
                                      + directory.SUBSCRIPTIONS * directory.SUBSCRIPTION_SIZE
                                      + directory.ADVERTS * directory.ADVERT_SIZE)


def test_a_new_session_header_holds_its_tables_and_the_first_free_token(session):
    header = session._directory.header()
    assert directory.layout_mismatch(header) is None
    assert (header.owner_token, header.next_token) == (1, 2)
    assert (header.subscriptions, header.adverts) == (directory.SUBSCRIPTIONS, directory.ADVERTS)


def test_next_token_and_the_generation_move_one_word_each(session):
    d = session._directory
    before = d.header()
    with d:
        token = d.next_token()
        assert d.header()._replace(next_token=before.next_token) == before
        assert d.generation() == before.generation
        d.bump_generation()
    assert token == before.next_token and d.header().next_token == token + 1
    assert d.generation() == before.generation + 1


# ---- publisher adverts ----

def test_advertise_is_idempotent_per_topic_and_inbox(session):
    a = session.create_inbox("a", **SMALL)
    b = session.create_inbox("b", **SMALL)
    d = session._directory
    with d:
        first = d.advertise("frames", a.token)
        generation = d.generation()
        assert d.advertise("frames", a.token) == first
        assert d.generation() == generation  # nothing changed: no route goes stale
        d.advertise("frames", b.token)
        d.advertise("frame", a.token)       # a prefix of a topic is another topic
        assert d.generation() == generation + 2
        assert sorted(d.publishers()) == [
            directory.Publisher("frame", "a", a.token), directory.Publisher("frames", "a", a.token),
            directory.Publisher("frames", "b", b.token)]
    a.close()
    b.close()


def test_adverts_go_with_their_inbox(session):
    a = session.create_inbox("a", **SMALL)
    b = session.create_inbox("b", **SMALL)
    d = session._directory
    with d:
        for topic in ("x", "y"):
            d.advertise(topic, a.token)
            d.advertise(topic, b.token)
    a.close()  # Directory.remove
    with d:
        assert sorted(d.publishers()) == [("x", "b", b.token), ("y", "b", b.token)]
        assert d.remove_named("b")
        assert d.publishers() == []
        # The slots are free again: a new inbox advertises into them.
        c = session.create_inbox("c", **SMALL)
        d.advertise("x", c.token)
        assert d.publishers() == [("x", "c", c.token)]
    b.close()
    c.close()


def test_a_full_advert_table_is_a_clear_error_naming_the_limit(session):
    a = session.create_inbox("a", **SMALL)
    d = session._directory
    with d:
        for i in range(directory.ADVERTS):
            d.advertise(f"t{i}", a.token)
        d.advertise("t0", a.token)  # already there: still fine
        with pytest.raises(ether.EtherError, match=f"no room for more than {directory.ADVERTS} "
                                                  f"publisher adverts \\(topic 'one-more'\\)"):
            d.advertise("one-more", a.token)
    a.close()
    with d:
        assert d.publishers() == []


def test_advertise_rejects_a_topic_the_directory_cannot_hold(session):
    a = session.create_inbox("a", **SMALL)
    with session._directory as d:
        for bad in ("", "x" * (directory.MAX_TOPIC + 1)):
            with pytest.raises(ether.ConfigError, match=f"1..{directory.MAX_TOPIC} bytes"):
                d.advertise(bad, a.token)
    a.close()


def test_a_node_advertises_once_per_topic(session):
    node = Node(session, "pub")
    node.advertise(["a", "b", "a"])
    node.advertise(["b"])
    with session._directory as d:
        assert sorted(p.topic for p in d.publishers()) == ["a", "b"]
    node.close()
    with session._directory as d:
        assert d.publishers() == []


# ---- member information ----

def test_set_info_is_read_back_in_the_entries(session):
    a = session.create_inbox("a", **SMALL)
    d = session._directory
    with d:
        (entry,) = d.entries()
        assert (entry.class_name, entry.state) == ("", directory.STATE_UNKNOWN)
        generation = d.generation()
        d.set_info(a.token, class_name="pkg.module.Camera", state=2)
        assert d.generation() == generation + 1
        d.set_info(a.token, state=7)                 # the class stays
        (entry,) = d.entries()
        assert (entry.class_name, entry.state) == ("pkg.module.Camera", 7)
        d.set_info(a.token, class_name="Ünïcode")    # the state stays
        (entry,) = d.entries()
        assert (entry.class_name, entry.state, entry.name) == ("Ünïcode", 7, "a")
        d.set_info(a.token, class_name="x" * directory.MAX_CLASS_NAME, state=directory.MAX_STATE)
        assert d.find("a").class_name == "x" * directory.MAX_CLASS_NAME
    a.close()


def test_set_info_rejects_what_the_directory_cannot_hold(session):
    a = session.create_inbox("a", **SMALL)
    with session._directory as d:
        with pytest.raises(ether.ConfigError, match=f"keeps at most {directory.MAX_CLASS_NAME}"):
            d.set_info(a.token, class_name="x" * (directory.MAX_CLASS_NAME + 1))
        for bad in (-1, directory.MAX_STATE + 1, True, 1.5):
            with pytest.raises(ether.ConfigError, match="member state must be an int"):
                d.set_info(a.token, state=bad)
        with pytest.raises(ether.InboxNotFound, match="no inbox with token"):
            d.set_info(a.token + 1000, state=1)
        assert (d.find("a").class_name, d.find("a").state) == ("", 0)
    a.close()


def test_a_reused_entry_starts_with_no_information(session):
    a = session.create_inbox("a", **SMALL)
    with session._directory as d:
        d.set_info(a.token, class_name="Old", state=3)
        index = d.find("a").index
    a.close()
    b = session.create_inbox("b", **SMALL)
    with session._directory as d:
        entry = d.find("b")
        assert entry.index == index
        assert (entry.class_name, entry.state) == ("", 0)
    b.close()


def test_session_set_member_state_and_node_describe(session):
    node = Node(session, "worker")
    node.describe("examples.Worker")
    session.set_member_state("worker", 4)
    with session._directory as d:
        entry = d.find("worker")
        assert (entry.class_name, entry.state) == ("examples.Worker", 4)
    with pytest.raises(ether.InboxNotFound, match=r"no inbox named 'nobody' \(inboxes: \['worker'\]\)"):
        session.set_member_state("nobody", 1)
    node.close()



def test_an_exception_while_flock_waits_leaves_the_mutex_free(session, monkeypatch):
    # A signal handler that raises inside flock (a test's timeout, Ctrl-C) once left
    # the directory's mutex held by the main thread: the next shutdown hung (CI).
    directory = session._directory
    seg = directory.seg

    def interrupted(self, exclusive=True, blocking=True):
        raise KeyboardInterrupt("while flock waited")

    monkeypatch.setattr(type(seg), "lock", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with directory:
            pass
    monkeypatch.undo()
    got = []

    def other_thread():
        got.append(directory.mutex.acquire(timeout=2))
        if got[-1]:
            directory.mutex.release()

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join(5)
    assert got == [True]   # another thread takes it at once
    with directory as d:   # and the flock path works again
        assert d.generation() >= 0
