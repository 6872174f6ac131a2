// Package identity verifies the identity claims of widget traffic: a
// customer's web page calls the app's widget API through the gateway,
// claiming a user id, and the customer's backend proves the claim with an
// HS256 JWT signed with the workspace's identity secret (ha_secret_…).
//
// The package has no HTTP or Caddy types. The gateway extracts the claimed
// user id and the token from the request and calls [Service.Check] with two
// plain strings; it gets back a [Verdict] (what the upstream receives in
// X-Widget-Identity), a [Cause] for failures and the [Mode] that applied.
//
// # Pieces
//
//   - [Verifier] checks one token against one claimed user id (HS256 only,
//     golang-jwt/jwt/v5's rules and causes, checked by a leaner parser that
//     the tests hold to golang-jwt's answers) and keeps a bounded cache of verified
//     tokens, so that a widget client sending the same token on every
//     request until it expires costs one parse, not one per request.
//     A Verifier is immutable; changing the secret or the mode builds a new
//     one, which empties the cache by construction.
//   - [Health] counts verified requests and failures per cause in memory
//     over a rolling 24-hour window, for the admin page's health banner and
//     the enforce gate.
//   - [Service] ties them to the store: the mode, the sealed secrets, the
//     rotation overlap and the widget key live in the setting
//     "identity/state", the health counters in "identity/health" (flushed in
//     batches, never one write per request).
//
// # Modes and verdicts
//
// A request that claims no user id is [Anonymous] in every mode and is not
// counted. For a request that claims one:
//
//   - Off: nothing is checked or counted; the verdict is [Unverified] with an
//     empty Cause. "unverified" means exactly what it says (the gateway
//     vouches for nothing), so an upstream that trusts only "verified" stays
//     correct whatever the mode; a fourth header value would break upstreams
//     that switch on the three documented ones. Callers that want to tell
//     "checks off" from "check failed" have the Mode and the empty Cause.
//   - Monitor: the token is verified and counted; the gateway lets the
//     request through whatever the verdict.
//   - Enforce: as Monitor, and the gateway answers 403 with the Cause when
//     the verdict is not Verified.
//
// Generating a secret always switches to Monitor, even from Enforce (seed
// 000); see Service.GenerateSecret.
//
// # Tokens
//
// HS256 only; exp required; nbf and iat honoured with a 30s leeway; the
// subject is user_id when present, else sub (exact, case-sensitive claim
// names; a string or an integer); tokens over 4096 bytes are refused before
// parsing. See Verifier for the rules and the cache.
//
// # Wiring (for the gateway)
//
//	svc, err := identity.OpenService(identity.ServiceOptions{Store: db, Box: box, Logger: log})
//	defer svc.Close()                       // flushes the counters
//	verdict, cause, mode := svc.Check(bearerToken, r.Header.Get("X-Widget-User-Id"))
//	r.Header.Set("X-Widget-Identity", verdict.String()) // after deleting client copies
//	if mode == identity.Enforce && verdict == identity.Unverified {
//		// 403 {"error": string(cause), "message": cause.Words()}
//	}
//
// Keep one Service per database across config reloads if possible (a
// usage pool); if two overlap anyway, Flush adds rather than overwrites, so
// neither loses counts.
package identity
