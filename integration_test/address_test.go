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

// viaClient is a browser behind the trusted proxy, at addr.
type viaClient struct {
	*client
	addr string
}

func (v viaClient) signIn(user string) resp {
	v.t.Helper()
	h := map[string]string{"X-Forwarded-For": v.addr}
	v.req("GET", "/login", nil, h)
	h["Content-Type"] = "application/x-www-form-urlencoded"
	return v.req("POST", "/login", strings.NewReader("username="+user+"&password="+user+"-password"), h)
}

func (v viaClient) api(path string, body string) resp {
	v.t.Helper()
	h := map[string]string{"X-Forwarded-For": v.addr}
	if body == "" {
		return v.req("GET", "/_mfa/api/v1/"+path, nil, h)
	}
	h["Content-Type"] = "application/json"
	return v.req("POST", "/_mfa/api/v1/"+path, strings.NewReader(body), h)
}

// TestSecondFactorOnlyFromNewAddresses: a user who chooses it is asked for
// the second factor only from addresses they have not passed it from; the
// session is then AAL1. Only they can choose it, with a method and at AAL2.
func TestSecondFactorOnlyFromNewAddresses(t *testing.T) {
	e := startGlobal(t, optsWith(manyUsers()), trustedLoopback, defaultGateway)
	secret, _, _ := e.enrolled("alice")
	home := viaClient{e.newClient(), "203.0.113.10"}
	if r := home.signIn("alice"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("first sign-in from home: %d %q", r.StatusCode, r.Location())
	}
	if r := home.api("challenge", `{"code":"`+code(t, secret, 1)+`"}`); r.StatusCode != 200 {
		t.Fatalf("challenge: %d %s", r.StatusCode, r.Body)
	}
	apiErr(t, home.api("addresses/new-ip-only", `{"on":"yes"}`), 400, "bad_request")
	if r := home.api("addresses/new-ip-only", `{"on":true}`); r.StatusCode != 200 {
		t.Fatalf("choose new-address-only: %d %s", r.StatusCode, r.Body)
	}
	if got := home.api("addresses", "").Body; !strings.Contains(got, `"new_ip_only":true`) || !strings.Contains(got, "203.0.113.10") {
		t.Fatalf("addresses: %s", got)
	}

	again := viaClient{e.newClient(), "203.0.113.10"}
	if r := again.signIn("alice"); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("a known address: %d %q, want the app", r.StatusCode, r.Location())
	}
	if st := again.api("status", ""); !strings.Contains(st.Body, `"aal":1`) {
		t.Fatalf("a session from a known address: %s, want AAL1", st.Body)
	}
	// AAL1 cannot change it, nor turn 2FA off.
	apiErr(t, again.api("addresses/new-ip-only", `{"on":false}`), 403, "aal2_required")

	away := viaClient{e.newClient(), "198.51.100.20"}
	if r := away.signIn("alice"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("a new address: %d %q, want the challenge", r.StatusCode, r.Location())
	}

	apiErr(t, home.api("addresses/forget", `{"address":"192.0.2.1"}`), 404, "unknown_address")
	if r := home.api("addresses/forget", `{"address":"203.0.113.10"}`); r.StatusCode != 200 {
		t.Fatalf("forget: %d %s", r.StatusCode, r.Body)
	}
	if r := (viaClient{e.newClient(), "203.0.113.10"}).signIn("alice"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("a forgotten address: %d %q, want the challenge", r.StatusCode, r.Location())
	}

	// Someone without a method cannot choose it.
	bob := viaClient{e.newClient(), "203.0.113.11"}
	bob.signIn("bob")
	apiErr(t, bob.api("addresses/new-ip-only", `{"on":true}`), 403, "aal2_required")
}

// TestTrustedNetworks: within trusted_networks nobody is asked for the
// second factor (the password still is); outside, everyone with one is.
func TestTrustedNetworks(t *testing.T) {
	e := startGlobal(t, optsWith(manyUsers()), trustedLoopback, defaultGateway+"\t\ttrusted_networks 203.0.113.0/24 2001:db8::/32\n")
	e.enrolled("carol")
	if r := (viaClient{e.newClient(), "203.0.113.99"}).signIn("carol"); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("inside the trusted network: %d %q, want the app", r.StatusCode, r.Location())
	}
	if r := (viaClient{e.newClient(), "2001:db8::5"}).signIn("carol"); r.StatusCode != 303 || r.Location() != "/" {
		t.Fatalf("inside the trusted IPv6 network: %d %q, want the app", r.StatusCode, r.Location())
	}
	if r := (viaClient{e.newClient(), "198.51.100.1"}).signIn("carol"); !strings.HasPrefix(r.Location(), "/_mfa/challenge") {
		t.Fatalf("outside: %d %q, want the challenge", r.StatusCode, r.Location())
	}
	// A wrong password is a wrong password, even there.
	v := viaClient{e.newClient(), "203.0.113.99"}
	h := map[string]string{"X-Forwarded-For": v.addr, "Content-Type": "application/x-www-form-urlencoded"}
	v.req("POST", "/login", strings.NewReader("username=carol&password=wrong"), h)
	if u := v.dashboardUser(); u == "carol" {
		t.Fatal("a wrong password signed carol in from a trusted network")
	}
}
