"""The caps' bookkeeping: every claim is given back, however its holder ends."""

import pytest

from app.graphql.admission import Admission, TooManyConnections, TooManySubscriptions


def admission(refused: list[str]) -> Admission:
    return Admission(
        connections=2,
        connections_per_token=1,
        subscriptions=3,
        subscriptions_per_token=2,
        refused=refused.append,
    )


def test_subscriptions_are_given_back_when_their_block_ends_or_fails():
    refused: list[str] = []
    caps = admission(refused)
    with caps.subscription("a"), caps.subscription("a"):
        with pytest.raises(TooManySubscriptions) as per_token, caps.subscription("a"):
            pass
        assert per_token.value.limit == 2
        assert per_token.value.setting == "MODELGRAPH_MAX_SUBSCRIPTIONS_PER_TOKEN"
        with pytest.raises(RuntimeError), caps.subscription("b"):
            raise RuntimeError("the subscription failed")
        with caps.subscription("b"):
            with pytest.raises(TooManySubscriptions) as total, caps.subscription("c"):
                pass
            assert total.value.setting == "MODELGRAPH_MAX_SUBSCRIPTIONS"
    assert caps.subscriptions == 0
    assert not caps.subscriptions_by_token
    assert refused == ["max_subscriptions_per_token", "max_subscriptions"]


def test_connections_are_counted_in_total_and_per_token_once_authenticated():
    refused: list[str] = []
    caps = admission(refused)
    caps.open_connection()
    caps.authenticate_connection("a")
    caps.open_connection()
    with pytest.raises(TooManyConnections):
        caps.authenticate_connection("a")
    with pytest.raises(TooManyConnections):
        caps.open_connection()
    caps.close_connection(token=None)  # the refused one, never authenticated
    caps.close_connection(token="a")
    assert caps.connections == 0
    assert not caps.connections_by_token
    assert refused == ["max_websocket_connections_per_token", "max_websocket_connections"]
