"""ContractValidator: both contract formats, violations as diffs, seq and client_op_id checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rig import paths
from rig.contract import ContractError, ContractValidator, ContractViolation

from ..conftest import unavailable

UPSTREAM = paths.PROJECT_ROOT.parent / "shared" / "contracts" / "openmusicbox" / "socketio_contracts.json"


def envelope(event_type: str, data: Any, seq: int = 7, event_id: str = "e-1") -> dict[str, Any]:
    return {"event_type": event_type, "server_seq": seq, "data": data, "timestamp": 1.0, "event_id": event_id}


def player(**overrides: Any) -> dict[str, Any]:
    return {"is_playing": True, "position_ms": 10, "can_prev": False, "can_next": True, "server_seq": 7, **overrides}


@pytest.fixture(scope="module")
def validator() -> ContractValidator:
    return ContractValidator(paths.DEFAULT_CONTRACT)


def test_project_contract_lists_the_v3_events(validator: ContractValidator) -> None:
    assert {"state:player", "state:playlists", "ack:op", "sync:complete", "connection_status"} <= set(
        validator.list_event_types()
    )
    schema = validator.get_event_schema("state:player")
    assert schema is not None
    assert "is_playing" in schema["required"]
    assert validator.get_event_schema("no:such") is None


def test_valid_events_pass(validator: ContractValidator) -> None:
    validator.validate_event("state:player", envelope("state:player", player()))
    validator.validate_event("client_pong", {"timestamp": 1, "server_time": 2.0, "server_seq": 3})


def test_violation_is_a_diff_with_path_expected_and_value(validator: ContractValidator) -> None:
    with pytest.raises(ContractViolation) as caught:
        validator.validate_event("state:player", envelope("state:player", player(position_ms="12")))
    message = str(caught.value)
    assert "state:player violates the contract at $.data.position_ms" in message
    assert '- expected: {"type": "integer"}' in message
    assert '+ got:      "12"' in message


def test_missing_envelope_field_is_named(validator: ContractValidator) -> None:
    broken = envelope("state:player", player())
    del broken["event_id"]
    problems = validator.check_event("state:player", broken)
    assert problems
    assert "'event_id' is a required property" in problems[0]
    assert "at $:" in problems[0]


def test_error_dict_inside_state_is_reported(validator: ContractValidator) -> None:
    problems = validator.check_event("state:player", envelope("state:player", {"error": {"message": "boom"}}))
    assert problems[0].startswith("state:player carries an error dict instead of state at $.data.error")
    assert any("'is_playing' is a required property" in p for p in problems)


def test_undeclared_event(validator: ContractValidator) -> None:
    assert validator.check_event("state:mystery", {}) == [
        f"state:mystery is not declared in {validator.title} {validator.version}"
    ]


def test_seq_monotonic_names_both_values(validator: ContractValidator) -> None:
    events = [envelope("state:player", player(), 5, "a"), envelope("state:playlists", {"playlists": []}, 3, "b")]
    with pytest.raises(
        ContractViolation, match=r"state:playlists server_seq=3 arrived after state:player server_seq=5"
    ):
        validator.validate_server_seq_monotonic(events)
    validator.validate_server_seq_monotonic(events[:1])


def test_client_op_id_correlation(validator: ContractValidator) -> None:
    ack = {"event_type": "ack:op", "client_op_id": "op-1", "success": True, "server_seq": 9}
    validator.validate_client_op_id_correlation("op-1", {"client_op_id": "op-1", "server_seq": 9}, ack)
    with pytest.raises(ContractViolation, match="HTTP server_seq=8 but ack:op server_seq=9"):
        validator.validate_client_op_id_correlation("op-1", {"client_op_id": "op-1", "server_seq": 8}, ack)
    with pytest.raises(ContractViolation, match="expected 'op-2'"):
        validator.validate_client_op_id_correlation("op-2", {"client_op_id": "op-1", "server_seq": 9}, ack)


def test_bad_contract_files(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="Contract file not found"):
        ContractValidator(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ContractError, match="not a readable JSON contract"):
        ContractValidator(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text(json.dumps({"envelope": {}}))
    with pytest.raises(ContractError, match="no events"):
        ContractValidator(tmp_path / "empty.json")


def test_project_contract_is_compatible_with_openmusicbox_v3_1_0(validator: ContractValidator) -> None:
    """Every event both contracts declare: ours requires at least what upstream requires, and a
    payload ours accepts, upstream accepts too."""
    if not UPSTREAM.is_file():
        unavailable(f"openmusicbox contract not beside the checkout ({UPSTREAM})")
    upstream = ContractValidator(UPSTREAM)
    assert upstream.version == "3.1.0"
    shared = set(validator.events) & set(upstream.events)
    assert len(shared) >= 20
    for name in shared:
        ours, theirs = validator.events[name], upstream.events[name]
        assert ours.envelope == theirs.envelope, name
        if theirs.schema and "required" in theirs.schema:
            assert set(theirs.schema["required"]) <= set((ours.schema or {}).get("required", [])), name
    sample = envelope("state:player", player(active_track_number=2, volume=40, duration_ms=3000))
    assert validator.check_event("state:player", sample) == []
    assert upstream.check_event("state:player", sample) == []


def test_system_events_are_declared_and_checked(validator: ContractValidator) -> None:
    disk = {"path": "/m", "total_bytes": 10, "free_bytes": 1, "low_threshold_bytes": 2, "low": True}
    services = {"nfc": "down", "audio_in": "up", "audio_out": "disabled", "gpio": "up"}
    health = {
        "status": "degraded",
        "cpu_temp_c": None,
        "load": {"1m": 0.1, "5m": 0.2, "15m": 0.3},
        "memory": {"total_bytes": 100, "available_bytes": 50},
        "disk": disk,
        "uptime_s": 12.5,
        "services": services,
        "interval_s": 1.0,
        "started_at": 1.0,
        "timestamp": 1.0,
    }
    assert validator.check_event("system:health", health) == []
    assert validator.check_event("system:storage_low", {**disk, "timestamp": 2.0}) == []
    service = {"service": "nfc", "state": "down", "previous": "up", "timestamp": 1.0}
    assert validator.check_event("system:service", service) == []
    problems = validator.check_event("system:service", {**service, "state": "gone"})
    assert "system:service violates the contract at $.state" in problems[0]
    problems = validator.check_event("system:health", {**health, "services": {**services, "nfc": True}})
    assert "$.services.nfc" in problems[0]
    restarting = {"reason": "update", "delay_ms": 300, "timestamp": 1.0}
    assert validator.check_event("system:restarting", restarting) == []
    error = {"where": "socket.io x", "error_type": "RuntimeError", "message": "boom", "timestamp": 1.0}
    assert validator.check_event("system:error", error) == []
    assert validator.events["join:system"].direction == "client_to_server"


def test_upload_events_refuse_a_track_file_name_that_is_a_path(validator: ContractValidator) -> None:
    track = {"id": "t", "number": 1, "title": "x", "filename": "x.wav", "duration_ms": 10}
    complete = {"playlist_id": "p", "session_id": "s", "filename": "x.wav", "track": track}
    assert validator.check_event("upload:complete", complete) == []
    escaped = {**complete, "track": {**track, "filename": "../../etc/passwd.mp3"}}
    assert "$.track.filename" in validator.check_event("upload:complete", escaped)[0]
    expired = {"playlist_id": "p", "session_id": "s", "error": "no chunk for 5 s", "code": "expired"}
    assert validator.check_event("upload:error", expired) == []
    progress = {"playlist_id": "p", "session_id": "s", "progress": 101, "chunk_index": 0}
    assert "$.progress" in validator.check_event("upload:progress", progress)[0]


def test_audio_websocket_messages_are_checked(validator: ContractValidator) -> None:
    assert validator.websocket_paths() == ["/ws/audio"]
    ack = {"type": "session_ack", "session_id": "s", "source": "client", "sample_rate": 16000, "max_chunk_bytes": 9}
    assert validator.check_ws_message("/ws/audio", "server_to_client", ack) == []
    problems = validator.check_ws_message("/ws/audio", "server_to_client", {**ack, "sample_rate": "16k"})
    assert problems[0].startswith("/ws/audio session_ack violates the contract at $.sample_rate")
    assert '+ got:      "16k"' in problems[0]
    unknown = validator.check_ws_message("/ws/audio", "server_to_client", {"type": "surprise"})
    assert "message type 'surprise' is not declared for server_to_client" in unknown[0]
    error = {"type": "error", "code": "no_session", "error": "send a 'session' message first"}
    assert validator.check_ws_message("/ws/audio", "server_to_client", error) == []
    chunk = {"type": "audio_chunk", "data": "AAA="}
    assert validator.check_ws_message("/ws/audio", "client_to_server", chunk) == []
    assert "is not declared" in validator.check_ws_message("/ws/chat", "server_to_client", ack)[0]


def test_every_observer_of_a_broadcast_gets_one_verdict_and_a_changed_payload_a_new_one(monkeypatch) -> None:
    """500 observers of one broadcast cost one jsonschema pass; the same event_id with another
    payload (a firmware that reuses ids) is checked again, never waved through."""
    fresh = ContractValidator(paths.DEFAULT_CONTRACT)
    passes: list[str] = []
    check = fresh._check_event
    monkeypatch.setattr(fresh, "_check_event", lambda event, payload: passes.append(event) or check(event, payload))
    sent = envelope("state:player", player(), event_id="broadcast-1")
    copies = [json.loads(json.dumps(sent)) for _ in range(3)]  # each observer decodes its own copy
    assert [fresh.check_event("state:player", c) for c in copies] == [[], [], []]
    assert len(passes) == 1
    reused = envelope("state:player", player(position_ms="12"), event_id="broadcast-1")
    problems = fresh.check_event("state:player", reused)
    assert len(passes) == 2
    assert "at $.data.position_ms" in problems[0]
