"""fedge.object_pulls: Flower's object pulls retry soon, and still deliver every object."""

import inspect

from flwr.supercore.inflatable import inflatable_utils
from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError

from fedge import object_pulls


def test_install_shortens_the_backoff_of_both_pull_functions() -> None:
    object_pulls.install()
    for pull in (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree):
        parameters = inspect.signature(pull).parameters
        assert parameters["initial_backoff"].default == object_pulls.INITIAL_BACKOFF == 0.02
        assert parameters["backoff_cap"].default == object_pulls.BACKOFF_CAP == 0.2


def test_an_object_missing_at_first_arrives_on_a_retry() -> None:
    object_pulls.install()
    asked: dict[str, int] = {}

    def pull(object_id: str) -> bytes:
        asked[object_id] = asked.get(object_id, 0) + 1
        if asked[object_id] < 3:  # not pushed yet: what a SuperLink answers before the sender is done
            raise ObjectUnavailableError(object_id)
        return object_id.encode()

    assert inflatable_utils.pull_objects(["a", "b"], pull) == {"a": b"a", "b": b"b"}
    assert asked == {"a": 3, "b": 3}
