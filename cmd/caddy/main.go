// Command caddy is Caddy with the mfa_gateway module plugged in: what
// xcaddy builds, for machines without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/mfagate/mfagate/caddymodule"
)

func main() {
	caddycmd.Main()
}
