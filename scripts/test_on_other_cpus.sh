#!/usr/bin/env bash
# Run the test suite as other CPUs would: float32 results computed along different paths round differently from
# one CPU to the next, and the suite must hold on any of them. Each variant changes what changes rounding here:
#   l2-256k, l2-512k, l2-2m  reversible's batch blocks as on a CPU with that L2 size (ACLJAX_L2_CACHE_BYTES)
#   l2-unreadable           /sys's cache sizes hidden (a private mount namespace; needs root): the 1 MiB fallback
#   avx2                    XLA's CPU code limited to AVX2 (XLA_FLAGS=--xla_cpu_max_isa=AVX2)
#   one-core                the whole run pinned to one core (taskset)
#   xla-default             XLA's CPU backend at its defaults (tests/conftest.py sets FAST_COMPILE_FLAGS)
# Usage: bash scripts/test_on_other_cpus.sh [VARIANT ...] [-- PYTEST ARGS]   (default: every variant, whole suite)
# One line per variant goes to stdout and runs/test_on_other_cpus.log; the full output of each to runs/.
set -uo pipefail
cd "$(dirname "$0")/.."
all=(l2-256k l2-512k l2-2m l2-unreadable avx2 one-core xla-default)
variants=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do variants+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#variants[@]} -gt 0 ] || variants=("${all[@]}")
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider "$@")
mkdir -p runs
status=0
for variant in "${variants[@]}"; do
  case "$variant" in
    l2-256k) cmd=(env ACLJAX_L2_CACHE_BYTES=256K "${pytest[@]}") ;;
    l2-512k) cmd=(env ACLJAX_L2_CACHE_BYTES=512K "${pytest[@]}") ;;
    l2-2m) cmd=(env ACLJAX_L2_CACHE_BYTES=2M "${pytest[@]}") ;;
    l2-unreadable) cmd=(env -u ACLJAX_L2_CACHE_BYTES unshare -m sh -c \
      'mount -t tmpfs none /sys/devices/system/cpu/cpu0/cache && exec "$@"' sh "${pytest[@]}") ;;
    avx2) cmd=(env XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_max_isa=AVX2" "${pytest[@]}") ;;
    one-core) cmd=(taskset -c 0 "${pytest[@]}") ;;
    xla-default) cmd=(env XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=3 --xla_cpu_use_fusion_emitters=true" \
      "${pytest[@]}") ;;
    *) echo "unknown variant '$variant'; known: ${all[*]}" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  "${cmd[@]}" > "runs/test_on_other_cpus_$variant.out" 2>&1
  rc=$?
  [ $rc = 0 ] || status=1
  line="$(date -u +%FT%TZ) $variant rc=$rc $(( $(date +%s) - start ))s: $(tail -n 1 "runs/test_on_other_cpus_$variant.out")"
  echo "$line" | tee -a runs/test_on_other_cpus.log
done
exit $status
