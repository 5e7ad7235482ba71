"""Control over MQTT, Zigbee2MQTT-style: ``<prefix>/request/<command>`` is answered on
``<prefix>/response/<command>`` with ``{"status": "ok"|"error", "data", "error", "transaction"}``.

Requests are JSON objects (an empty payload counts as ``{}``); a ``transaction`` value is
echoed back so a caller can match answers to questions. Any malformed or unknown request gets
an error response: nothing a client sends can raise out of ``ControlHandler.handle``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_asr.errors import EdgeAsrError

if TYPE_CHECKING:
    from edge_asr.mqtt.client import MqttPublisher
    from edge_asr.mqtt.topics import Topics

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024

# A command takes the request's parameters and returns the response's data.
Command = Callable[[dict[str, Any]], Any]


class ControlResponse(BaseModel):
    """The answer to one request, on ``<prefix>/response/<command>`` (QoS 1, not retained)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["ok", "error"]
    data: Any = Field(default=None, description="What the command returned (ok only).")
    error: str | None = Field(default=None, description="What was wrong (error only).")
    transaction: str | int | None = Field(
        default=None, description="The request's transaction value, echoed."
    )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


class CommandError(EdgeAsrError):
    """A command refused a request; the message goes back to the caller."""


class ControlHandler:
    """Turns request payloads into responses by calling the named command."""

    def __init__(self, commands: Mapping[str, Command]) -> None:
        self._commands = dict(commands)

    @property
    def commands(self) -> list[str]:
        return sorted(self._commands)

    def handle(self, command: str, payload: bytes) -> ControlResponse:
        transaction: str | int | None = None
        try:
            params = self._parse(payload)
            raw_transaction = params.pop("transaction", None)
            if isinstance(raw_transaction, (str, int)) and not isinstance(raw_transaction, bool):
                transaction = raw_transaction
            elif raw_transaction is not None:
                raise CommandError("'transaction' must be a string or an integer")
            func = self._commands.get(command)
            if func is None:
                raise CommandError(
                    f"unknown command {command!r}; known: {', '.join(self.commands)}"
                )
            data = func(params)
            return ControlResponse(status="ok", data=data, transaction=transaction)
        except CommandError as e:
            return ControlResponse(status="error", error=str(e), transaction=transaction)
        except EdgeAsrError as e:
            return ControlResponse(status="error", error=str(e), transaction=transaction)
        except Exception as e:  # the edge: a command bug must not take the daemon down
            log.exception("control command %r failed", command)
            return ControlResponse(
                status="error", error=f"internal error: {type(e).__name__}", transaction=transaction
            )

    @staticmethod
    def _parse(payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_REQUEST_BYTES:
            raise CommandError(
                f"request too large ({len(payload)} bytes; limit {MAX_REQUEST_BYTES})"
            )
        if not payload.strip():
            return {}
        try:
            value = json.loads(payload.decode("utf-8"))
        except UnicodeDecodeError:
            raise CommandError("request is not UTF-8 text") from None
        except json.JSONDecodeError as e:
            raise CommandError(f"request is not valid JSON ({e.msg} at position {e.pos})") from None
        except RecursionError:
            raise CommandError("request is nested too deeply") from None
        if not isinstance(value, dict):
            raise CommandError(f"request must be a JSON object, not {type(value).__name__}")
        return value


def no_params(params: dict[str, Any]) -> None:
    """For commands without parameters: reject any, naming them."""
    if params:
        raise CommandError(f"unexpected parameters: {', '.join(sorted(params))}")


def parse_params(model: type[BaseModel], params: dict[str, Any]) -> Any:
    """Validate parameters against a pydantic model; CommandError names the bad key."""
    try:
        return model.model_validate(params)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(request)"
        raise CommandError(f"{key}: {first['msg']}") from None


class ControlRequests:
    """Answers requests arriving on ``<prefix>/request/+``, one at a time in its own thread.

    paho delivers messages in its network thread, which must never wait for a command (a
    reload compiles a grammar): requests are queued, and a full queue is answered "busy".
    """

    def __init__(
        self,
        publisher: MqttPublisher,
        topics: Topics,
        handler: ControlHandler,
        queue_size: int = 32,
    ) -> None:
        self._publisher = publisher
        self._topics = topics
        self._handler = handler
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="mqtt-control", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._publisher.subscribe(self._topics.requests, self._received)

    def close(self, timeout: float) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _received(self, topic: str, payload: bytes) -> None:
        command = self._topics.command_of(topic)
        try:
            self._queue.put_nowait((command, payload))
        except queue.Full:
            answer = ControlResponse(status="error", error="busy: too many requests waiting")
            self._publisher.publish(self._topics.response(command), answer.to_json())

    def _run(self) -> None:
        while (request := self._queue.get()) is not None:
            command, payload = request
            answer = self._handler.handle(command, payload)
            if answer.status == "error":
                log.info("control request %r refused: %s", command, answer.error)
            try:
                self._publisher.publish(self._topics.response(command), answer.to_json())
            except Exception:  # the edge: a lost answer must not end request handling
                log.exception("cannot publish the answer to %r", command)
