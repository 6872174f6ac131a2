package mfa

import (
	"context"
	"testing"
)

// The members summary counts everyone without a second factor: a user who
// signed in without one, and an admin the operator named who never signed
// in (known to the gateway, never enrolled).
func TestMembersCountNamedAdminsWhoNeverSignedIn(t *testing.T) {
	svc, clk := newService(t)
	r := newRealm(t, svc, func(c *Config) { c.Admins = []string{"alice", "dave"} })
	ctx := context.Background()
	enrol(t, r, clk) // alice: authenticator
	if _, out, err := r.SignIn(ctx, Actor{User: "bob"}, SignIn{User: "bob"}); err != nil || out != SignedIn {
		t.Fatalf("bob's sign-in: %v, %v", out, err)
	}

	ms, err := r.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Member{}
	var order []string
	for _, m := range ms {
		got[m.User] = m
		order = append(order, m.User)
	}
	if len(ms) != 3 || order[0] != "alice" || order[1] != "bob" || order[2] != "dave" {
		t.Fatalf("members %q, want alice, bob, dave in order", order)
	}
	if d := got["dave"]; d.Enrolled || d.Method != "none" || !d.LastSignIn.IsZero() {
		t.Errorf("dave (named, never signed in) reads %+v, want not enrolled, method none, no sign-in", d)
	}
	if !got["alice"].Enrolled || got["bob"].Enrolled {
		t.Errorf("alice enrolled %v, bob enrolled %v; want true, false", got["alice"].Enrolled, got["bob"].Enrolled)
	}
	if n := Unenrolled(ms); n != 2 {
		t.Errorf("Unenrolled = %d, want 2 (bob and dave)", n)
	}

	// The store alone (the operator's list) knows only who signed in.
	stored, err := svc.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || Unenrolled(stored) != 1 {
		t.Errorf("stored members %+v, want alice and bob, 1 without 2FA", stored)
	}

	// Once every member has a factor, the count is zero.
	if n := Unenrolled([]Member{{User: "a", Enrolled: true}}); n != 0 {
		t.Errorf("Unenrolled of an enrolled member = %d", n)
	}
}
