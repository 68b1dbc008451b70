"""The shell commands deploy sends to restart a service and read its journal, quoted safely."""

from __future__ import annotations

from rig.deploy import supervisor_service, systemd_service


def test_systemd_commands_use_only_the_sudo_rule_for_one_unit() -> None:
    service = systemd_service("musicbox")
    assert service.restart == "sudo -n systemctl restart musicbox"
    assert service.journal.format(lines=20) == "journalctl -u musicbox -n 20 --no-pager -o cat"
    assert service.follow.endswith('exec journalctl -u musicbox -f -o json --since "$since"')
    assert "echo rig-follow-ready" in service.follow


def test_names_are_quoted() -> None:
    service = systemd_service("music box; reboot")
    assert service.restart == "sudo -n systemctl restart 'music box; reboot'"
    supervised = supervisor_service("/opt/py -m supervisor.supervisorctl -c /s/conf", "firmware", "/s/fw log")
    assert supervised.restart == "/opt/py -m supervisor.supervisorctl -c /s/conf restart firmware"
    assert supervised.journal.format(lines=5) == "tail -n 5 '/s/fw log'"
    assert supervised.follow == (
        "seen=$(wc -l < '/s/fw log' 2>/dev/null || echo 0); echo rig-follow-ready; "
        "exec tail -n +\"$((seen + 1))\" -F '/s/fw log'"
    )
