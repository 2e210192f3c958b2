#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install acljax into it. Usage: bash scripts/setup.sh [EXTRAS]
# EXTRAS: e.g. "dev" for the test tools. On Debian as root it also installs the offline data
# sources (Noto fonts and Unifont for the glyph set, the Fashion-MNIST package).
# Re-running is cheap: apt and pip skip what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "acljax needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2; exit 1; }

system_packages=(fonts-noto-core fonts-unifont dataset-fashion-mnist)
missing=()
for p in "${system_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: offline data sources need: apt-get install ${missing[*]} (run as root); continuing without" >&2
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
