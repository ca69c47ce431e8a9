#!/usr/bin/env bash
# Debian packages the test suite needs, installed when missing (as root), else a clear message.
#   prometheus: the `prometheus` server and `promtool` (rule checks, rule unit tests, scrape test)
set -euo pipefail
missing=()
for cmd in prometheus promtool; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing ${missing[*]}: install Debian's package with: sudo apt-get install prometheus" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends prometheus >/dev/null; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends prometheus >/dev/null
fi
# The package may start a service on machines with an init system; the tests run their own.
command -v promtool >/dev/null && echo "installed: $(promtool --version 2>&1 | head -n 1)"
