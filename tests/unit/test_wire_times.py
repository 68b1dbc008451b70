"""The latency benchmark's loopback capture: which event reached which socket, and when."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dpkt

from benchmarks.wire_times import CaptureUnavailable, LoopbackCapture, arrivals
from tests.conftest import unavailable

SERVER_PORT = 8443


def frame(payload: bytes, client_port: int) -> bytes:
    """An Ethernet frame as tcpdump records the loopback: server → client, TCP over IPv4."""
    tcp = dpkt.tcp.TCP(sport=SERVER_PORT, dport=client_port, flags=dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK, data=payload)
    ip = dpkt.ip.IP(src=socket.inet_aton("127.0.0.1"), dst=socket.inet_aton("127.0.0.1"), p=dpkt.ip.IP_PROTO_TCP)
    ip.data = tcp
    ip.len += len(tcp)
    return bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def event(name: str, event_id: str) -> bytes:
    body = f'42["{name}",{{"event_type":"{name}","server_seq":3,"data":{{}},"event_id":"{event_id}"}}]'
    return b"\x81\x7e" + len(body).to_bytes(2, "big") + body.encode()  # a WebSocket text frame


def test_arrivals_keep_each_clients_first_copy_of_each_event(tmp_path: Path) -> None:
    pcap = tmp_path / "lo.pcap"
    with pcap.open("wb") as out:
        writer = dpkt.pcap.Writer(out)
        writer.writepkt(frame(event("state:player", "e1"), 5001), ts=100.000)
        writer.writepkt(frame(event("state:player", "e1"), 5002), ts=100.001)
        # two frames in one segment, one of them another event
        writer.writepkt(frame(event("nfc_association_state", "n1") + event("state:player", "e2"), 5002), ts=100.5)
        writer.writepkt(frame(event("state:player", "e1"), 5001), ts=101.0)  # a retransmission
    found = arrivals(pcap, "state:player")
    assert found == {(5001, "e1"): 100.0, (5002, "e1"): 100.001, (5002, "e2"): 100.5}


def test_a_live_capture_stamps_what_a_server_sent_to_each_client() -> None:
    started = time.time()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        try:
            capture = LoopbackCapture(port)
        except CaptureUnavailable as exc:
            unavailable(str(exc))
        try:
            clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
            for number, client in enumerate(clients):
                accepted, _ = server.accept()
                with accepted:
                    accepted.sendall(event("state:player", f"e{number}"))
                    assert client.recv(4096).endswith(b'"e%d"}]' % number)
                client.close()
        finally:
            capture.stop()
        found = arrivals_of(capture)
    assert sorted(i for _, i in found) == ["e0", "e1"]
    assert len({p for p, _ in found}) == 2  # each to its own client's port
    assert all(started <= stamp <= time.time() for stamp in found.values())


def arrivals_of(capture: LoopbackCapture) -> dict[tuple[int, str], float]:
    try:
        return capture.arrivals("state:player")
    finally:
        capture.close()
