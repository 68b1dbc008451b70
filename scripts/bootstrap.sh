#!/usr/bin/env bash
# Bootstrap for `make demo` and `make test`: system packages, then .venv with the project in it.
# Does nothing on a second run when nothing changed (a stamp holds the hash of the inputs).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# Debian packages the rig and the virtual Pi need: python3-venv provides ensurepip for .venv;
# the virtual Pi runs a real OpenSSH server, and the rig makes its keys with ssh-keygen; as root
# it lives in a network namespace (iproute2), and its own account restarts the firmware with
# Debian's supervisorctl (supervisor; the package's own daemon is not used).
# systemd-analyze (systemd) and visudo (sudo) check the unit and sudo rule that provision-pi.sh renders.
# socat joins the pty pair of the virtual Pi's serial console.
# Audio: the virtual Pi's cables are a PulseAudio server with null sinks (pulseaudio; pacat from
# pulseaudio-utils keeps the monitors live); sounddevice needs PortAudio (libportaudio2), which
# reaches PulseAudio through ALSA's pulse plugin (libasound2-plugins). espeak-ng regenerates the
# spoken-command fixtures (fixtures/audio/generate.py); it and flite (a second synthesiser, with
# voices nothing like espeak-ng's) speak the voice benchmark's commands. rsync: the deploy
# benchmark (make bench) compares the rig's deploy with it. tcpdump: the latency benchmark times
# each broadcast's arrival at each observer's socket on the loopback.
APT_PACKAGES=(python3 python3-venv python3-dev openssh-server openssh-client iproute2 procps supervisor systemd sudo socat
  pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 espeak-ng flite rsync tcpdump)

say() { printf 'bootstrap: %s\n' "$*" >&2; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The rig runs its own sshd and supervisord; the packages' system daemons must not start.
    # Debian's policy-rc.d mechanism says so to their install scripts, for this install only.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
      trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing system packages. Run this once, then retry:"
    printf '  sudo apt-get install -y %s\n' "${missing[*]}" >&2
    exit 1
  fi
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  say "$PYTHON is $("$PYTHON" --version 2>&1); the rig needs Python 3.11 or newer (set PYTHON=...)"
  exit 1
}

stamp="$VENV/.bootstrap-stamp"
inputs=$(cat pyproject.toml fixtures/firmware/requirements.txt device_drivers/gpio/mockpins/pyproject.toml \
  scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$inputs" && -x $VENV/bin/rig ]]; then
  exit 0
fi

[[ -x $VENV/bin/python ]] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
say "installing the rig and the reference firmware's requirements into $VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The local-form virtual Pi runs the firmware in this venv, so its requirements and the GPIO mock
# pin factory (a gpiozero plugin, found by entry point) are installed here too.
"$VENV/bin/python" -m pip install --quiet -e '.[sim,dev]' -r fixtures/firmware/requirements.txt \
  -e ./device_drivers/gpio/mockpins
# labgrid (coordinator, exporter and client, for --lg-place and its tests) in an environment of its
# own: installed beside the rig it would replace pyserial with its fork (pyserial-labgrid) and load
# its pytest plugin into every run.
LABGRID_VENV=${LABGRID_VENV:-.venv-labgrid}
[[ -x $LABGRID_VENV/bin/python ]] || { say "creating $LABGRID_VENV"; "$PYTHON" -m venv "$LABGRID_VENV"; }
say "installing labgrid into $LABGRID_VENV"
"$LABGRID_VENV/bin/python" -m pip install --quiet --upgrade pip
"$LABGRID_VENV/bin/python" -m pip install --quiet 'labgrid>=24'
echo "$inputs" >"$stamp"
say "ready"
