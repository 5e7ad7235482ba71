"""MQTT control requests: every request gets an answer; none can raise."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pydantic import BaseModel

from edge_asr.mqtt.control import CommandError, ControlHandler, no_params, parse_params


class PauseParams(BaseModel):
    seconds: float | None = None


def make_handler() -> tuple[ControlHandler, dict[str, Any]]:
    state: dict[str, Any] = {"listening": True}

    def pause(params: dict[str, Any]) -> dict[str, Any]:
        parse_params(PauseParams, params)
        state["listening"] = False
        return {"listening": False}

    def status(params: dict[str, Any]) -> dict[str, Any]:
        no_params(params)
        return dict(state)

    def broken(params: dict[str, Any]) -> None:
        raise KeyError("bug")

    def refuse(params: dict[str, Any]) -> None:
        raise CommandError("cannot do that now")

    commands = {"pause": pause, "status": status, "broken": broken, "refuse": refuse}
    return ControlHandler(commands), state


def test_ok_response_carries_data_and_transaction() -> None:
    handler, state = make_handler()
    response = handler.handle("pause", b'{"transaction": "abc"}')
    assert response.status == "ok"
    assert response.data == {"listening": False}
    assert response.transaction == "abc"
    assert state["listening"] is False
    assert json.loads(response.to_json()) == {
        "status": "ok",
        "data": {"listening": False},
        "error": None,
        "transaction": "abc",
    }


def test_empty_payload_is_an_empty_request() -> None:
    handler, _ = make_handler()
    assert handler.handle("status", b"").status == "ok"


@pytest.mark.parametrize(
    ("command", "payload", "error"),
    [
        ("nope", b"{}", "unknown command 'nope'; known: broken, pause, refuse, status"),
        ("status", b"{", "not valid JSON"),
        ("status", b"[1, 2]", "must be a JSON object, not list"),
        ("status", b"42", "must be a JSON object, not int"),
        ("status", b'"x"', "must be a JSON object, not str"),
        ("status", b"\xff\xfe", "not UTF-8"),
        ("status", b'{"x": 1}', "unexpected parameters: x"),
        ("pause", b'{"seconds": "soon"}', "seconds:"),
        ("status", b'{"transaction": [1]}', "'transaction' must be"),
        ("status", b"{}" + b" " * 70000, "request too large"),
        ("status", b'{"a": ' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
        ("refuse", b"{}", "cannot do that now"),
        ("broken", b"{}", "internal error: KeyError"),
    ],
)
def test_bad_requests_get_an_error_response(command: str, payload: bytes, error: str) -> None:
    handler, _ = make_handler()
    response = handler.handle(command, payload)
    assert response.status == "error"
    assert error in (response.error or "")
    assert response.data is None


def test_transaction_is_echoed_on_errors_too() -> None:
    handler, _ = make_handler()
    assert handler.handle("nope", b'{"transaction": 7}').transaction == 7


def test_random_garbage_never_raises() -> None:
    handler, _ = make_handler()
    rng = random.Random(0)
    for _ in range(500):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        command = rng.choice(["pause", "status", "", "x" * 300, "broken"])
        response = handler.handle(command, payload)
        assert response.status in ("ok", "error")
