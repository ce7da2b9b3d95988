#!/usr/bin/env bash
# The browser the dashboard's tests drive: Debian's chromium, installed with apt when it is
# missing (Playwright's own browser download is never used; it cannot work offline).
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
[ -x /usr/bin/chromium ] || { echo "install-browser: /usr/bin/chromium still missing" >&2; exit 1; }
