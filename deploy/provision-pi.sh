#!/usr/bin/env bash
# Prepare a fresh Raspberry Pi OS install for the rig. Run once, as root, on the Pi:
#
#   scp deploy/provision-pi.sh deploy/systemd/musicbox.service.in ~/.ssh/id_ed25519.pub pi@PI:
#   ssh -t pi@PI sudo bash provision-pi.sh --key id_ed25519.pub
#
# It creates the account the rig deploys as, authorises the rig's key for it, installs the
# firmware's systemd unit, gives the account a sudo rule for systemctl on that one unit and
# nothing else, lets it read the unit's journal, and installs the packages the firmware needs.
# Running it again is safe: each step checks what is already there.
set -euo pipefail

USER_NAME=musicbox
UNIT=musicbox
ROOT=""
PORT=8000
NFC=""
CONSOLE=/dev/serial0
SPEAKER=""
MIC=""
KEY=""
TEMPLATE="$(dirname "$0")/musicbox.service.in"
[[ -f $TEMPLATE ]] || TEMPLATE="$(dirname "$0")/systemd/musicbox.service.in"
RENDER_ONLY=""
PACKAGES=(python3 python3-venv libportaudio2 libsndfile1 pulseaudio-utils)

usage() {
  cat >&2 <<USAGE
usage: provision-pi.sh --key PUBKEY [--user NAME] [--unit NAME] [--root DIR] [--port N] [--nfc PATH] [--console DEV]
                       [--speaker NAME] [--mic NAME]
       provision-pi.sh --render DIR [same options]   (write the unit and sudo rule to DIR, change nothing)
  --key PUBKEY  the rig host's public SSH key (e.g. ~/.ssh/id_ed25519.pub), authorised for the account
  --user NAME   the account that deploys and runs the firmware (default $USER_NAME)
  --unit NAME   the systemd unit (default $UNIT; the bench file's [deploy] unit)
  --root DIR    the deploy root (default /home/NAME/musicbox; the bench file's [deploy] root)
  --port N      the firmware's HTTP port (default $PORT; the port of the bench file's [dut] url)
  --nfc PATH    the Pi's NFC reader as nfcpy names it: tty:AMA0:pn532 (a PN532 HAT), usb (default: none)
  --console DEV the serial console the firmware writes to (default $CONSOLE; enable_uart=1 in config.txt)
  --speaker NAME the PortAudio output the firmware plays to, as 'python3 -m sounddevice' lists it
                (e.g. "bcm2835 Headphones", "USB Audio"; default: none, the player runs on its clock)
  --mic NAME    the PortAudio input for voice commands (e.g. "USB Audio"; default: none)
USAGE
  exit 2
}

die() { printf 'provision-pi: %s\n' "$*" >&2; exit 1; }
say() { printf 'provision-pi: %s\n' "$*"; }

while (($#)); do
  case $1 in
    --key) KEY=${2:?}; shift 2 ;;
    --user) USER_NAME=${2:?}; shift 2 ;;
    --unit) UNIT=${2:?}; shift 2 ;;
    --root) ROOT=${2:?}; shift 2 ;;
    --port) PORT=${2:?}; shift 2 ;;
    --nfc) NFC=${2:?}; shift 2 ;;
    --console) CONSOLE=${2:?}; shift 2 ;;
    --speaker) SPEAKER=${2:?}; shift 2 ;;
    --mic) MIC=${2:?}; shift 2 ;;
    --render) RENDER_ONLY=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) printf 'provision-pi: unknown option %s\n' "$1" >&2; usage ;;
  esac
done

[[ $USER_NAME =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "--user $USER_NAME is not a valid account name"
[[ $UNIT =~ ^[A-Za-z0-9_.@-]+$ ]] || die "--unit $UNIT is not a valid unit name"
[[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || die "--port $PORT is not a TCP port"
[[ $NFC =~ ^((tty|usb|udp)[A-Za-z0-9_.:-]*)?$ ]] || die "--nfc $NFC is not an nfcpy device path (tty:AMA0:pn532, usb)"
[[ $CONSOLE =~ ^/dev/[A-Za-z0-9_/-]+$ ]] || die "--console $CONSOLE is not a device path under /dev"
for device in "$SPEAKER" "$MIC"; do
  [[ $device =~ ^[A-Za-z0-9\ _.,:()-]*$ ]] || die "audio device name '$device' has characters a unit file cannot hold"
done
ROOT=${ROOT:-/home/$USER_NAME/musicbox}
[[ $ROOT == /* ]] || die "--root $ROOT must be an absolute path"
[[ -f $TEMPLATE ]] || die "no unit template next to this script (musicbox.service.in)"

render() {  # the unit file and the sudo rule, into folder $1
  sed -e "s|@USER@|$USER_NAME|g" -e "s|@UNIT@|$UNIT|g" -e "s|@ROOT@|$ROOT|g" -e "s|@PORT@|$PORT|g" \
    -e "s|@NFC@|$NFC|g" -e "s|@CONSOLE@|$CONSOLE|g" -e "s|@SPEAKER@|$SPEAKER|g" -e "s|@MIC@|$MIC|g" \
    "$TEMPLATE" >"$1/$UNIT.service"
  {
    printf '# The rig deploys as %s and may restart the firmware unit, nothing else.\n' "$USER_NAME"
    for verb in restart start stop status; do
      for systemctl in /usr/bin/systemctl /bin/systemctl; do
        printf '%s ALL=(root) NOPASSWD: %s %s %s\n' "$USER_NAME" "$systemctl" "$verb" "$UNIT"
      done
    done
  } >"$1/rig-$UNIT.sudoers"
}

if [[ -n $RENDER_ONLY ]]; then
  mkdir -p "$RENDER_ONLY"
  render "$RENDER_ONLY"
  say "wrote $RENDER_ONLY/$UNIT.service and $RENDER_ONLY/rig-$UNIT.sudoers"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "run as root (sudo bash $0 ...)"
[[ -n $KEY ]] || die "--key PUBKEY is required: the rig host's public key"
[[ -f $KEY ]] || die "--key $KEY: no such file"
grep -qE '^(ssh-ed25519|ssh-rsa|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) ' "$KEY" || die "--key $KEY is not an OpenSSH public key"
command -v systemctl >/dev/null || die "no systemctl: this script is for a Raspberry Pi OS (systemd) install"

say "packages: ${PACKAGES[*]} sudo"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" sudo >/dev/null

if ! id "$USER_NAME" >/dev/null 2>&1; then
  say "account $USER_NAME"
  useradd --create-home --shell /bin/bash --comment "firmware under test (pi-hil-rig)" "$USER_NAME"
  usermod --password '*' "$USER_NAME"  # no password, yet not locked: key logins only
fi
for group in gpio audio dialout plugdev spi i2c systemd-journal; do
  getent group "$group" >/dev/null && usermod -aG "$group" "$USER_NAME"
done
HOME_DIR=$(getent passwd "$USER_NAME" | cut -d: -f6)

say "authorised key for $USER_NAME"
install -d -m 700 -o "$USER_NAME" -g "$USER_NAME" "$HOME_DIR/.ssh"
touch "$HOME_DIR/.ssh/authorized_keys"
grep -qxF "$(cat "$KEY")" "$HOME_DIR/.ssh/authorized_keys" || cat "$KEY" >>"$HOME_DIR/.ssh/authorized_keys"
chown "$USER_NAME:$USER_NAME" "$HOME_DIR/.ssh/authorized_keys"
chmod 600 "$HOME_DIR/.ssh/authorized_keys"

install -d -o "$USER_NAME" -g "$USER_NAME" "$ROOT"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
render "$staging"

say "sudo rule: $USER_NAME may run systemctl restart/start/stop/status $UNIT, nothing else"
visudo -cqf "$staging/rig-$UNIT.sudoers" || die "the rendered sudo rule does not parse; nothing installed"
install -m 440 "$staging/rig-$UNIT.sudoers" "/etc/sudoers.d/rig-$UNIT"

say "systemd unit /etc/systemd/system/$UNIT.service (runs $ROOT/current on port $PORT)"
install -m 644 "$staging/$UNIT.service" "/etc/systemd/system/$UNIT.service"
systemctl daemon-reload
systemctl enable "$UNIT.service" >/dev/null

say "done. Next, on the rig host: rig enroll --bench BENCH.toml, then rig deploy --bench BENCH.toml"
