#!/usr/bin/env bash
# Checks the protobuf API in proto/ (CI runs this; so can you, from anywhere):
#   1. buf lint (STANDARD, see buf.yaml)
#   2. buf format: the .proto files are formatted
#   3. buf breaking (FILE) against api/commy-v1.binpb, the released API
#   4. gen/ is what `npm run generate` produces from proto/ right now
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The project's own buf (a devDependency); never fetched from the network.
buf() { npx --no-install buf "$@"; }

step() { printf '%s\n' "-- $*"; }
fail() {
  printf 'check-proto: %s\n' "$*" >&2
  exit 1
}

step "buf lint"
buf lint || fail "buf lint failed (see above)"

step "buf format"
buf format -d --exit-code || fail "proto files are not formatted: run npx buf format -w"

step "buf breaking against api/commy-v1.binpb"
buf breaking --against api/commy-v1.binpb ||
  fail "breaking change against the released API (api/commy-v1.binpb): see api/README.md"

step "gen/ matches proto/"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
buf generate -o "$tmp"
diff -r -q "$tmp/gen" gen >&2 || fail "gen/ is stale: run npm run generate"

echo "proto checks passed"
