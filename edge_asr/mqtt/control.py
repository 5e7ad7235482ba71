"""Control over MQTT, Zigbee2MQTT-style: ``<prefix>/request/<command>`` is answered on
``<prefix>/response/<command>`` with ``{"status": "ok"|"error", "data", "error", "transaction"}``.

Requests are JSON objects (an empty payload counts as ``{}``); a ``transaction`` value is
echoed back so a caller can match answers to questions. Any malformed or unknown request gets
an error response: nothing a client sends can raise out of ``ControlHandler.handle``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_asr.errors import EdgeAsrError

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
