package integration_test

import (
	"strings"
	"testing"
)

// trustedLoopback trusts the test's own address as a proxy.
const trustedLoopback = "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32 ::1/128\n\t}"

// TestClientAddressFromTrustedProxies: behind a proxy Caddy trusts, the
// gateway takes the client's address from the proxy's headers, as Caddy
// determined it: sessions show it, and wrong codes count against it, not
// against the proxy every client shares. Without trusted_proxies the
// header is the client's word and ignored.
func TestClientAddressFromTrustedProxies(t *testing.T) {
	e := startGlobal(t, optsWith(manyUsers()), trustedLoopback, defaultGateway+"\t\tmax_attempts 1\n\t\tadmins admin\n")
	_, _, admin := e.enrolled("admin")
	secret, _, _ := e.enrolled("alice")
	e.enrolled("bob")

	via := func(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }
	c := e.newClient()
	c.req("GET", "/login", nil, via("203.0.113.7"))
	r := c.req("POST", "/login", strings.NewReader("username=alice&password=alice-password"),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": "203.0.113.7"})
	if !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("sign-in via the proxy: %d %q", r.StatusCode, r.Location())
	}
	body := strings.NewReader(`{"code":"` + wrongCode(t, secret) + `"}`)
	apiErr(t, c.req("POST", "/_mfa/api/v1/challenge", body, map[string]string{"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.7"}), 401, "invalid_code")

	// bob, behind the same proxy from another address, is not locked out
	// by alice's wrong code (4 x max_attempts per address would allow it
	// anyway: the sessions list shows whose address is whose).
	if out := e.newClient(); true {
		out.req("GET", "/login", nil, via("198.51.100.9"))
		r := out.req("POST", "/login", strings.NewReader("username=bob&password=bob-password"),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": "198.51.100.9"})
		if !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
			t.Fatalf("bob via the proxy: %d %q", r.StatusCode, r.Location())
		}
	}
	ops := admin.api("admin/sessions", nil).Body
	if !strings.Contains(ops, `"remote_addr":"203.0.113.7"`) || !strings.Contains(ops, `"remote_addr":"198.51.100.9"`) {
		t.Fatalf("alice's session does not show her address: %s", ops)
	}
}

// TestClientAddressHeaderIgnoredWithoutTrust: without trusted_proxies, an
// X-Forwarded-For header is the client's own claim and changes nothing.
func TestClientAddressHeaderIgnoredWithoutTrust(t *testing.T) {
	e := start(t, optsWith(manyUsers()), defaultGateway+"\t\tadmins admin\n")
	_, _, admin := e.enrolled("admin")
	e.enrolled("alice")
	c := e.newClient()
	c.req("GET", "/login", nil, map[string]string{"X-Forwarded-For": "203.0.113.7"})
	c.req("POST", "/login", strings.NewReader("username=alice&password=alice-password"),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": "203.0.113.7"})
	if ops := admin.api("admin/sessions", nil).Body; strings.Contains(ops, "203.0.113.7") || !strings.Contains(ops, `"remote_addr":"127.0.0.1"`) {
		t.Fatalf("an untrusted X-Forwarded-For was taken: %s", ops)
	}
}
