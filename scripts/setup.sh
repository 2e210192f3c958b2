#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install acljax into it. Usage: bash scripts/setup.sh [EXTRAS]
# EXTRAS: e.g. "dev" for the test tools, "docs" for the docs site. On Debian as root it also installs the offline
# data sources (Noto fonts and Unifont for the glyph set, the Fashion-MNIST package), and with "docs" Debian's
# chromium (the docs' browser check); while another apt or
# dpkg holds the package locks it waits for them, up to APT_LOCK_TIMEOUT seconds (default 600).
# Re-running is cheap: apt and pip skip what is installed.
set -euo pipefail
python="${PYTHON:-python3}"
lock_wait="${APT_LOCK_TIMEOUT:-600}"

wait_for_lock() {  # wait_for_lock FILE: until no process holds apt's (fcntl) lock on FILE, at most $lock_wait s
  "$python" - "$1" "$lock_wait" <<'EOF'
import fcntl, os, sys, time
path, limit = sys.argv[1], float(sys.argv[2])
try:
    fd = os.open(path, os.O_RDWR)
except OSError:
    sys.exit(0)  # no lock file (or not ours to lock: not root), nothing to wait for
deadline, said = time.monotonic() + limit, False
while True:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        sys.exit(0)  # free (released when this process exits)
    except OSError:
        if time.monotonic() >= deadline:
            sys.exit(f"{path}: still held by another apt or dpkg after {limit:g} s (APT_LOCK_TIMEOUT); try again later")
        if not said:
            print(f"waiting for {path}, held by another apt or dpkg (up to {limit:g} s)", file=sys.stderr, flush=True)
            said = True
        time.sleep(0.5)
EOF
}

apt_get() {  # apt-get that waits up to $lock_wait s for dpkg's locks (apt-get update does not wait for its own)
  apt-get -o DPkg::Lock::Timeout="$lock_wait" "$@"
}

install_system_packages() {  # install_system_packages PACKAGE...
  echo "installing $* (waiting up to $lock_wait s for any other apt or dpkg to finish)" >&2
  wait_for_lock /var/lib/apt/lists/lock
  apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq "$@" >/dev/null
}

main() {
  cd "$(dirname "$0")/.."
  local extras="${1:-}"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "acljax needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2; exit 1; }

  local system_packages=(fonts-noto-core fonts-unifont dataset-fashion-mnist) missing=() p
  # the docs' browser check (scripts/build_docs.sh) opens the built site in Debian's chromium
  [[ ",$extras," == *,docs,* ]] && system_packages+=(chromium)
  for p in "${system_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      install_system_packages "${missing[@]}"
    else
      echo "note: offline data sources need: apt-get install ${missing[*]} (run as root); continuing without" >&2
    fi
  fi

  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  # --no-compile: Python compiles the modules it imports on first import, not all of every package now
  .venv/bin/python -m pip install -q --no-compile -e ".${extras:+[$extras]}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # run, not sourced (the tests source it for its functions)
  main "$@"
fi
