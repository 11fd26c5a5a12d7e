"""Decorators only annotate; introspection reads the annotations; messages become
validated keyword arguments."""
import msgspec
import pytest

from ether import (ether_cleanup, ether_init, ether_pub, ether_save_all, ether_shutdown,
                   ether_start, ether_sub)
from ether._spec._decorators import MethodSpec, spec_of
from ether._spec._introspect import ValidationFailed, argument_decoder, introspect, message_of

encode = msgspec.msgpack.encode


def test_decorators_return_the_same_function_with_and_without_parentheses():
    def f(self):
        return 1
    for deco in (ether_pub, ether_sub, ether_start, ether_init, ether_cleanup, ether_save_all,
                 ether_shutdown):
        assert deco(f) is f
        assert deco()(f) is f


def test_stacking_in_either_order_gives_the_same_spec():
    def a(self): ...
    def b(self): ...
    ether_pub(topic="out")(ether_sub(topic="in")(a))
    ether_sub(topic="in")(ether_pub(topic="out")(b))
    assert spec_of(a) == spec_of(b) == MethodSpec(subs=("in",), pubs=("out",))


def test_unknown_arguments_are_rejected_at_once_listing_the_valid_ones():
    with pytest.raises(TypeError, match=r"ether_sub\(\) got unknown argument\(s\) topc; valid: topic"):
        ether_sub(topc="x")
    with pytest.raises(TypeError, match="ether_start.. got unknown argument.s. topic; valid: none"):
        ether_start(topic="x")
    with pytest.raises(TypeError, match="pass the topic by name"):
        ether_pub("data")(lambda self: None)
    with pytest.raises(TypeError, match="non-empty str"):
        ether_pub(topic="")


class Plain:
    def __init__(self):
        self.calls = []

    @ether_start
    @ether_pub(topic="data")
    def generate(self, data: int = 42) -> dict:
        return {"data": data}

    @ether_sub()
    def default_topic(self, x: int):
        self.calls.append(x)

    @ether_save_all
    def save(self):
        pass


def test_the_class_stays_plain_without_a_session():
    p = Plain()
    assert p.generate() == {"data": 42}
    p.default_topic(3)
    assert p.calls == [3]
    assert type(Plain.__dict__["generate"]).__name__ == "function"


def test_introspection_resolves_topics_and_lifecycle():
    spec = introspect(Plain)
    by_method = {h.method: h for h in spec.handlers}
    assert by_method["generate"].topics == ("start",)
    assert by_method["generate"].pubs == ("data",)
    assert by_method["default_topic"].topics == ("Plain.default_topic",)
    assert spec.lifecycle["save_all"] == ("save",)
    assert spec.pubs == {"generate": ("data",)}


def test_arguments_are_validated_coerced_and_defaulted():
    def method(self, a: int, b: float = 1.5, c: list[int] = [], **rest): ...  # noqa: B006
    args = argument_decoder(method, "T.method")
    assert args(encode({"a": "3", "zzz": 1})) == {"a": 3, "b": 1.5, "c": [], "zzz": 1}
    with pytest.raises(ValidationFailed, match="field 'a': Expected `int`, got `str`"):
        args(encode({"a": "three"}))
    with pytest.raises(ValidationFailed, match="missing required field `a`"):
        args(encode({}))
    with pytest.raises(ValidationFailed, match="malformed message"):
        args(b"\xc1")


def test_unknown_keys_are_ignored_without_kwargs():
    def method(self, a: int): ...
    assert argument_decoder(method, "T.m")(encode({"a": 1, "b": 2})) == {"a": 1}


def test_published_results_must_be_maps():
    assert message_of(None) == {}
    assert message_of({"a": 1}) == {"a": 1}
    with pytest.raises(TypeError, match="must be a dict, a msgspec Struct, a pydantic model"):
        message_of(5)


def test_the_first_parameter_of_a_method_is_the_instance_whatever_its_name():
    # The seed README's sync example: `def set_state(config)` inside a class.
    from ether import ether_sync

    class Rig:
        @ether_sync(topic="prepare_trial")
        def set_state(config, speed: int = 1):
            return speed

        @staticmethod
        @ether_sub(topic="t")
        def plain(value: int):
            return value

    spec = introspect(Rig)
    (service,) = spec.syncs["prepare_trial"]
    assert service.arguments(msgspec.msgpack.encode({"speed": 3})) == {"speed": 3}
    (handler,) = spec.handlers
    assert handler.arguments(msgspec.msgpack.encode({"value": 4})) == {"value": 4}
