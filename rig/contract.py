"""Contract validation of Socket.IO traffic, with the seed suite's ``ContractValidator`` API.

Two contract file formats load: the project's own (``fixtures/contracts/*.json``: a flat
``events`` map) and openmusicbox's (``contracts`` grouped by area, with ``event_envelope_format``),
so the rig can check any firmware that ships such a file. The project's file also describes plain
WebSocket endpoints (``websockets``: per path and direction, a schema per message ``type``).
A violation names the JSON path, the schema that was expected and the value that came, laid out
as a diff.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match

MAX_PROBLEMS = 5  # per event: enough to see the defect without burying the report
VERDICTS_KEPT = 256  # recent events whose verdict the next observer of the same broadcast reuses


class ContractError(ValueError):
    """A contract file that cannot be used."""


class ContractViolation(AssertionError):
    """Firmware traffic that breaks the contract; the message is the full explanation."""


@dataclass(frozen=True)
class EventSpec:
    name: str
    direction: str
    envelope: bool
    schema: dict[str, Any] | None  # payload schema, or the data schema of an enveloped event


def _json_path(parts: Iterable[Any]) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _short(value: Any, limit: int = 240) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(event_type: str, error: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """One violation as a diff: where, what the contract expects, what came."""
    path = _json_path([*prefix, *error.absolute_path])
    expected = {error.validator: error.validator_value}
    return (
        f"{event_type} violates the contract at {path}: {error.message}\n"
        f"  - expected: {_short(expected)}\n"
        f"  + got:      {_short(error.instance)}"
    )


class ContractValidator:
    def __init__(self, contract_path: str | Path) -> None:
        self.path = Path(contract_path)
        if not self.path.is_file():
            raise ContractError(f"Contract file not found: {self.path}")
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ContractError(f"{self.path}: not a readable JSON contract: {exc}") from None
        self.title: str = raw.get("title", self.path.name)
        self.version: str = str(raw.get("version", "unknown"))
        self._root = raw
        self.events: dict[str, EventSpec] = self._load_events(raw)
        envelope = raw.get("envelope") or raw.get("event_envelope_format", {}).get("schema")
        if not isinstance(envelope, dict):
            raise ContractError(f"{self.path}: no envelope schema (expected 'envelope' or 'event_envelope_format')")
        self._envelope = self._validator(envelope)
        self._validators = {
            name: self._validator(spec.schema) for name, spec in self.events.items() if spec.schema is not None
        }
        self._verdicts: OrderedDict[str, tuple[str, Any, list[str]]] = OrderedDict()  # by event_id
        self._ws: dict[tuple[str, str], dict[str, Draft7Validator]] = {
            (path, direction): {kind: self._validator(schema) for kind, schema in messages.items()}
            for path, endpoint in (raw.get("websockets") or {}).items()
            for direction, messages in endpoint.items()
            if isinstance(messages, dict) and direction in ("client_to_server", "server_to_client")
        }

    def _validator(self, schema: dict[str, Any]) -> Draft7Validator:
        # Definitions live at the contract's root, so $refs resolve against it.
        return Draft7Validator({**schema, "definitions": self._root.get("definitions", {})})

    def _load_events(self, raw: Mapping[str, Any]) -> dict[str, EventSpec]:
        if isinstance(raw.get("events"), dict):
            flat = raw["events"]
        elif isinstance(raw.get("contracts"), dict):
            flat = {name: spec for group in raw["contracts"].values() for name, spec in group.get("events", {}).items()}
        else:
            raise ContractError(f"{self.path}: no events (expected 'events' or 'contracts')")
        events = {}
        for name, spec in flat.items():
            enveloped = bool(spec.get("envelope"))
            schema = spec.get("data" if enveloped else "payload") if "data" in spec or "payload" in spec else None
            if enveloped and schema is None:
                schema = spec.get("data_schema")
            events[name] = EventSpec(name, spec.get("direction", "server_to_client"), enveloped, schema)
        return events

    # -- the seed's API ------------------------------------------------------------------------
    def list_event_types(self) -> list[str]:
        return sorted(self.events)

    def get_event_schema(self, event_type: str) -> dict[str, Any] | None:
        spec = self.events.get(event_type)
        return None if spec is None else spec.schema

    def check_event(self, event_type: str, payload: Any) -> list[str]:
        """All violations of one received event, as messages; empty when it conforms.

        Every observer of a broadcast checks the same event: the verdict on an ``event_id`` is
        kept and given again for an equal payload, so 500 observers cost one jsonschema pass (a
        quarter of a millisecond each), not 500. A payload that differs is checked afresh."""
        event_id = payload.get("event_id") if isinstance(payload, dict) else None
        seen = self._verdicts.get(event_id) if isinstance(event_id, str) else None
        if seen is not None and seen[0] == event_type and seen[1] == payload:
            return list(seen[2])
        problems = self._check_event(event_type, payload)
        if isinstance(event_id, str):
            self._verdicts[event_id] = (event_type, payload, problems)
            if len(self._verdicts) > VERDICTS_KEPT:
                self._verdicts.popitem(last=False)
        return list(problems)

    def _check_event(self, event_type: str, payload: Any) -> list[str]:
        spec = self.events.get(event_type)
        if spec is None:
            return [f"{event_type} is not declared in {self.title} {self.version}"]
        problems: list[str] = []
        if spec.envelope:
            problems += [describe(event_type, e) for e in self._sorted_errors(self._envelope, payload)]
            if problems:
                return problems
            data = payload["data"]
            if isinstance(data, dict) and "error" in data:
                problems.append(
                    f"{event_type} carries an error dict instead of state at $.data.error:\n"
                    f"  + got:      {_short(data['error'])}"
                )
            validator = self._validators.get(event_type)
            if validator is not None:
                problems += [describe(event_type, e, ("data",)) for e in self._sorted_errors(validator, data)]
        elif (validator := self._validators.get(event_type)) is not None:
            problems += [describe(event_type, e) for e in self._sorted_errors(validator, payload)]
        return problems

    @staticmethod
    def _sorted_errors(validator: Draft7Validator, instance: Any) -> list[ValidationError]:
        errors = list(validator.iter_errors(instance))
        if not errors:
            return []
        first = best_match(errors)
        return [first, *(e for e in errors if e is not first)][:MAX_PROBLEMS]

    def websocket_paths(self) -> list[str]:
        return sorted({path for path, _ in self._ws})

    def check_ws_message(self, path: str, direction: str, message: Any) -> list[str]:
        """Violations of one message on a plain WebSocket endpoint (``direction``: "server_to_client"
        or "client_to_server"); empty when it conforms."""
        messages = self._ws.get((path, direction))
        if messages is None:
            return [f"{path} ({direction}) is not declared in {self.title} {self.version}"]
        kind = message.get("type") if isinstance(message, dict) else None
        validator = messages.get(kind) if isinstance(kind, str) else None
        if validator is None:
            return [f"{path}: message type {kind!r} is not declared for {direction}; declared: {', '.join(messages)}"]
        name = f"{path} {kind}"
        return [describe(name, e) for e in self._sorted_errors(validator, message)]

    def validate_event(self, event_type: str, payload: Any) -> None:
        problems = self.check_event(event_type, payload)
        if problems:
            raise ContractViolation("\n".join(problems))

    def validate_server_seq_monotonic(self, events: Iterable[Any]) -> None:
        """Enveloped state events must carry strictly increasing server_seq, in arrival order."""
        previous: tuple[str, int] | None = None
        for event in events:
            event_type, payload = _unpack(event)
            if not isinstance(payload, dict) or "server_seq" not in payload or "event_id" not in payload:
                continue
            seq = payload["server_seq"]
            if previous is not None and seq <= previous[1]:
                raise ContractViolation(
                    f"server_seq not monotonically increasing: {event_type} server_seq={seq} "
                    f"arrived after {previous[0]} server_seq={previous[1]}"
                )
            previous = (event_type, seq)

    def validate_client_op_id_correlation(self, client_op_id: str, http_response: Any, websocket_event: Any) -> None:
        """The HTTP reply and the ``ack:op`` name the same operation and the same server_seq."""
        body = http_response.json() if hasattr(http_response, "json") else http_response
        event_type, payload = _unpack(websocket_event)
        if body.get("client_op_id") != client_op_id:
            raise ContractViolation(
                f"HTTP response client_op_id is {body.get('client_op_id')!r}, expected {client_op_id!r}"
            )
        if event_type not in ("ack:op", "err:op") or payload.get("client_op_id") != client_op_id:
            raise ContractViolation(f"expected ack:op for {client_op_id!r}, got {event_type} {_short(payload)}")
        if body.get("server_seq") != payload.get("server_seq"):
            raise ContractViolation(
                f"{client_op_id!r}: HTTP server_seq={body.get('server_seq')} but {event_type} "
                f"server_seq={payload.get('server_seq')}"
            )


def _unpack(event: Any) -> tuple[str, Any]:
    if hasattr(event, "event_type"):
        return event.event_type, event.data
    if isinstance(event, Mapping):
        return str(event.get("event_type", "?")), event
    raise TypeError(f"cannot read an event from {type(event).__name__}")
