#!/bin/sh
# Debian's prometheus package, for its two binaries (prometheus, promtool) only: `make run
# ARGS=--prometheus` starts its own server and the tests their own. The package's service is kept
# from starting (policy-rc.d) while it installs. Where it cannot be installed, say so and go on:
# the Prometheus tests skip, saying why.
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: prometheus not installed (needs root and apt-get); its tests will be skipped"
  exit 0
fi
policy=/usr/sbin/policy-rc.d
made=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made=1
fi
ok=0
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  prometheus >/dev/null && ok=1
[ -n "$made" ] && rm -f "$policy"
if [ "$ok" = 1 ]; then
  # Where systemd runs and started it anyway, the packaged service would hold port 9090.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
else
  echo "note: prometheus could not be installed; its tests will be skipped"
fi
exit 0
