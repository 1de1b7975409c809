#!/usr/bin/env bash
# Checks the running service against its own /openapi.json with schemathesis: every check, on
# generated valid and invalid requests, within a time budget. Fails on any failure.
#
# Starts the debug stowage-api on its embedded defaults (SQLite and local disk in a temporary
# DATA_DIR) with a known AUTH_SECRET_KEY, mints a user token, uploads one file so that ids exist,
# then runs `st run`. Rate limits stay on, with limits no test run reaches, so that the generated
# requests exercise the routes rather than the limiter.
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (default 50 per operation), SCHEMATHESIS_MAX_TIME
# (seconds, default 150), SCHEMATHESIS_PORT (default 18930), STOWAGE_BIN (default the debug build).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${STOWAGE_BIN:-target/debug/stowage-api}"
port="${SCHEMATHESIS_PORT:-18930}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
max_time="${SCHEMATHESIS_MAX_TIME:-150}"
base="http://127.0.0.1:${port}"

command -v st >/dev/null || { echo "schemathesis is not installed (pip install schemathesis)" >&2; exit 1; }
[ -x "$bin" ] || cargo build -p stowage-api

data_dir="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$data_dir"
}
trap cleanup EXIT

export DATA_DIR="$data_dir"
export AUTH_SECRET_KEY="schemathesis-secret-key-0123456789abcdef"
export BIND_ADDR="127.0.0.1:${port}"
export PUBLIC_URL="$base"
export RATE_LIMIT_UPLOAD="1000000/1s"
export RATE_LIMIT_DOWNLOAD="1000000/1s"
export LOG_FORMAT="${LOG_FORMAT:-json}"
export RUST_LOG="${RUST_LOG:-warn}"

"$bin" serve >"$data_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/health/live" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$data_dir/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/health/live" >/dev/null

token="$("$bin" token --user-id 1 --account-id 1)"
printf 'schemathesis: one file so that ids exist\n' >"$data_dir/sample.txt"
curl -fsS -o /dev/null -H "Authorization: Bearer $token" \
  -F "file=@$data_dir/sample.txt;type=text/plain" "$base/files"

# A request of the documented shape can still carry content the service refuses for what it is,
# which no schema can state: bytes an upload policy does not accept (415), a range past the end of
# the file (416). Those count as accepting valid data; a 400 for a schema-valid request does not.
cat >"$data_dir/schemathesis.toml" <<'TOML'
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "415", "416", "429", "5xx"]

# `key` and `prefix` are bounded in bytes of UTF-8 (512), which JSON Schema cannot express: the
# document says `maxLength: 512` characters, so 512 multi-byte characters are schema-valid and
# still a 400 here. An upload URL's `max_bytes` is bounded by the configured MAX_UPLOAD_BYTES,
# which the static document cannot state either.
[[operations]]
include-operation-id = ["upload_file", "upload_file_alias", "list_files", "create_upload_url"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "415", "416", "429", "5xx"]

# tus answers a request without `Tus-Resumable: 1.0.0` with 412, as the protocol says, and an
# unknown upload (any generated id) with 404 or 410. HTTP allows any header besides the
# documented ones, so an extra one makes no request invalid. Its headers have rules no header
# schema states (Upload-Length and Upload-Defer-Length exclude each other, Upload-Concat names
# upload URLs, Upload-Metadata holds base64 pairs, Upload-Checksum a known algorithm): a 400.
[[operations]]
include-operation-id = ["tus_create", "tus_status", "tus_append", "tus_terminate"]
generation.allow-extra-parameters = false
checks.missing_required_header.expected-statuses = ["400", "401", "403", "406", "412", "415", "422"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "410", "412", "413", "415", "422", "428", "429", "5xx"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "410", "413", "415", "429", "460", "5xx"]

# Image variant parameters have rules across parameters and from the configuration that a query
# schema cannot state: `fit` needs both `w` and `h`, `variant` excludes them and names a
# configured preset, `w` and `h` stop at IMAGE_MAX_OUTPUT_PX (a 400). A variant of a file that is
# not an image is 422 UNSUPPORTED_IMAGE, and `format=avif` 501 NOT_SUPPORTED in this build.
[[operations]]
include-operation-id = ["download_file", "download_by_key", "create_signed_url"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "415", "416", "422", "429", "501", "5xx"]
TOML

# tus bytes travel as application/offset+octet-stream, a type schemathesis has no serializer for.
cat >"$data_dir/tus_bytes.py" <<'PY'
import schemathesis


@schemathesis.serializer("application/offset+octet-stream")
def tus_bytes(ctx, value):
    return value if isinstance(value, bytes) else str(value).encode()
PY
export PYTHONPATH="$data_dir${PYTHONPATH:+:$PYTHONPATH}"
export SCHEMATHESIS_HOOKS=tus_bytes

status=0
# Direct uploads need an S3 store: on this run's disk store both routes answer the contract's
# `501 NOT_SUPPORTED`, which schemathesis counts as a server error. tests/tests/direct.rs covers
# them on s3s-fs and moto.
# From the temporary directory, so that schemathesis keeps its cache (.schemathesis/) there.
(cd "$data_dir" && st --config-file "$data_dir/schemathesis.toml" run "$base/openapi.json" \
  --checks all \
  --exclude-operation-id start_direct_upload --exclude-operation-id complete_direct_upload \
  --header "Authorization: Bearer $token" \
  --max-examples "$max_examples" \
  --max-time "$max_time" \
  --workers 1 \
  --seed 1 \
  --suppress-health-check too_slow \
  --report junit --report-dir "$data_dir/report" \
  "$@") || status=$?

if [ "$status" -ne 0 ]; then
  echo "schemathesis failed (exit $status); the server's log:" >&2
  tail -n 50 "$data_dir/server.log" >&2
fi
exit "$status"
