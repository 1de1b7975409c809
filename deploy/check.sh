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

# Pneumatic's start command for its file service, run through the image's entrypoint and poetry
# stand-in with a stowage-api that records how it was called.
mkdir -p "$work/bin"
cp "$here/pneumatic/entrypoint" "$work/bin/stowage-entrypoint"
cp "$here/pneumatic/poetry" "$work/bin/poetry"
cat > "$work/bin/stowage-api" <<STUB
#!/bin/sh
echo "stowage-api \$* BIND_ADDR=\${BIND_ADDR:-}" >> "$work/calls"
STUB
chmod +x "$work/bin/"*
command=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["services"]["file-service"]["command"])' "$here/pneumatic/docker-compose.yml")
command=${command//\$\{FILE_PORT:-8000\}/8000}
command=${command//\$\{FILE_WORKERS:-1\}/1}
PATH="$work/bin:$PATH" stowage-entrypoint sh -c "${command#sh -c }" >/dev/null 2>&1 || true
PATH="$work/bin:$PATH" eval "stowage-entrypoint $command"
PATH="$work/bin:$PATH" stowage-entrypoint migrate
expected="stowage-api migrate BIND_ADDR=
stowage-api serve BIND_ADDR=0.0.0.0:8000
stowage-api migrate BIND_ADDR="
if [ "$(tail -n 3 "$work/calls")" != "$expected" ]; then
  echo "Pneumatic's start command did not map to migrate, then serve on its port:" >&2
  cat "$work/calls" >&2
  exit 1
fi
echo "Pneumatic's start command runs stowage-api migrate, then serve on its port"
