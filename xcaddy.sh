#!/usr/bin/env bash
# Builds ./caddy with the mfa_gateway module (http.handlers.mfa_gateway).
#
#   ./xcaddy.sh
#
# With xcaddy on PATH:  xcaddy build --with github.com/mfagate/mfagate=.
# Without it:           go build -o caddy ./cmd/caddy
#                       (cmd/caddy is Caddy's main with the standard modules
#                        plus our caddymodule: the same binary xcaddy makes)
set -euo pipefail

cd "$(dirname "$0")"

if ! command -v go >/dev/null 2>&1; then
	echo "xcaddy.sh: Go is not on PATH (go.mod asks for $(awk '/^go /{print $2}' go.mod))" >&2
	exit 1
fi

if command -v xcaddy >/dev/null 2>&1; then
	echo "xcaddy.sh: building ./caddy with xcaddy ($(command -v xcaddy))"
	xcaddy build --output ./caddy --with github.com/mfagate/mfagate=.
else
	echo "xcaddy.sh: xcaddy not on PATH; building ./caddy with: go build -o caddy ./cmd/caddy"
	go build -o caddy ./cmd/caddy
fi

echo "xcaddy.sh: built $(pwd)/caddy"
./caddy version
if ! ./caddy list-modules | grep mfa_gateway; then
	echo "xcaddy.sh: http.handlers.mfa_gateway is missing from ./caddy" >&2
	exit 1
fi
