#!/usr/bin/env bash
# Checks deploy/ without a container engine: YAML and settings (check.py), then `nginx -t`
# on nginx.conf with the compose service names pointed at loopback (they resolve only in compose).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python3 "$here/check.py"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sed -e 's/server stowage-[0-9]*:8080/server 127.0.0.1:8080/' \
    -e "s#access_log /var/log/nginx/access.log#access_log $work/access.log#" "$here/nginx.conf" > "$work/nginx.conf"
nginx -t -q -c "$work/nginx.conf" -g "pid $work/nginx.pid; error_log $work/error.log;"
echo "nginx -t passed"
