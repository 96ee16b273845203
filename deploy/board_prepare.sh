#!/bin/sh
# Prepare an ARM board (Raspberry Pi 4/5, Banana Pi M5, ...) for reproducible latency
# figures, or report its state. Run ON THE BOARD:
#
#   sh board_prepare.sh            # report: arch, governor, clocks, temperature, throttling
#   sudo sh board_prepare.sh --performance   # pin every core's governor to "performance"
#   sudo sh board_prepare.sh --restore       # back to the kernel's default (ondemand/schedutil)
#
# Nothing here is needed for `bnn-keras bench --ssh` to work; it makes its numbers
# comparable from run to run (see deploy/README.md).
set -eu

mode="${1:-report}"
cpus=/sys/devices/system/cpu

set_governor() {
  for g in "$cpus"/cpu[0-9]*/cpufreq/scaling_governor; do
    [ -w "$g" ] || { echo "error: cannot write $g (run with sudo)" >&2; exit 1; }
    echo "$1" > "$g"
  done
}

case "$mode" in
  --performance) set_governor performance ;;
  --restore)
    avail="$(cat "$cpus/cpu0/cpufreq/scaling_available_governors" 2>/dev/null || true)"
    case " $avail " in
      *" schedutil "*) set_governor schedutil ;;
      *) set_governor ondemand ;;
    esac ;;
  report) ;;
  *) echo "usage: $0 [--performance|--restore]" >&2; exit 2 ;;
esac

echo "kernel/arch : $(uname -sr) $(uname -m)"
[ "$(uname -m)" = aarch64 ] || echo "warning: not a 64-bit ARM userland; lce_benchmark_model_aarch64 will not run"
if [ -r /proc/device-tree/model ]; then
  echo "board       : $(tr -d '\0' < /proc/device-tree/model)"
fi
echo "cores       : $(grep -c ^processor /proc/cpuinfo)"
for c in "$cpus"/cpu[0-9]*; do
  f="$c/cpufreq"
  [ -d "$f" ] || continue
  echo "$(basename "$c") : governor=$(cat "$f/scaling_governor") cur=$(($(cat "$f/scaling_cur_freq") / 1000))MHz max=$(($(cat "$f/scaling_max_freq") / 1000))MHz"
done
for z in /sys/class/thermal/thermal_zone*; do
  [ -r "$z/temp" ] || continue
  echo "temperature : $(cat "$z/type" 2>/dev/null || echo zone) $(($(cat "$z/temp") / 1000)) C"
done
if command -v vcgencmd >/dev/null 2>&1; then
  # Raspberry Pi firmware: 0x0 = never throttled nor under-voltage since boot
  echo "throttled   : $(vcgencmd get_throttled)"
  echo "arm clock   : $(vcgencmd measure_clock arm)"
fi
if command -v lce_benchmark_model >/dev/null 2>&1; then
  echo "lce tool    : $(command -v lce_benchmark_model)"
else
  echo "lce tool    : lce_benchmark_model not on PATH (pass --binary PATH to bnn-keras bench)"
fi
