#!/usr/bin/env bash
# Debian packages the test suite needs, installed when missing (as root), else a clear message.
#   prometheus: the `prometheus` server and `promtool` (rule checks, rule unit tests, scrape test)
#   chromium:   a headless browser that opens the rehearsal's HTML report (tests/rehearsal)
#   wrk:        the gateway benchmark's load generator (make bench asks for it by name)
# With arguments, only those commands are checked (scripts/ensure_system_packages.sh wrk).
#
# Another apt process (unattended-upgrades, a parallel install) may hold the dpkg lock: every
# apt-get call waits for it up to APT_LOCK_TIMEOUT seconds (default 300) with apt's
# DPkg::Lock::Timeout, instead of failing at once with exit 100 (issue 16). `apt-get update`
# takes the package lists' lock too, which older apt releases do not wait for, so it is also
# retried every APT_RETRY_INTERVAL_S seconds (default 5) until that timeout.
set -euo pipefail
lock_timeout="${APT_LOCK_TIMEOUT:-300}"
retry_interval="${APT_RETRY_INTERVAL_S:-5}"
apt_get() { apt-get -o "DPkg::Lock::Timeout=${lock_timeout}" "$@"; }
update_lists() {
  local deadline=$((SECONDS + lock_timeout))
  until apt_get update -q >/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "apt-get update kept failing for ${lock_timeout} s (is another apt process holding its lock?)" >&2
      return 100
    fi
    sleep "$retry_interval"
  done
}
declare -A package_of=([prometheus]=prometheus [promtool]=prometheus [chromium]=chromium [wrk]=wrk)
commands=("$@")
[ ${#commands[@]} -eq 0 ] && commands=(prometheus promtool chromium)
missing=()
for cmd in "${commands[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${package_of[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "missing ${packages[*]}: install Debian's packages with: sudo apt-get install ${packages[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt_get install -y -q --no-install-recommends "${packages[@]}" >/dev/null; then
  update_lists
  apt_get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
fi
# The package may start a service on machines with an init system; the tests run their own.
command -v promtool >/dev/null && echo "installed: $(promtool --version 2>&1 | head -n 1)"
command -v chromium >/dev/null && echo "installed: $(chromium --version 2>/dev/null | head -n 1)"
command -v wrk >/dev/null && echo "installed: wrk"
exit 0
