package session

import (
	"testing"
	"unsafe"
)

// TestBoundRemembersOnlyWhatMatched: the value remembered after a match is
// accepted again without hashing, and nothing else is: another value, the
// value under another name, and the value once the bindings change.
func TestBoundRemembersOnlyWhatMatched(t *testing.T) {
	s := &Session{}
	s.SetBindings([]Binding{{Name: "sid", Hash: HashValue("v1")}, {Name: "csrf", Hash: HashValue("c1")}, {Name: "third", Hash: HashValue("t1")}})
	for range 2 { // the second pass reads the remembered values
		for _, c := range []struct {
			name, value string
			want        bool
		}{
			{"sid", "v1", true}, {"csrf", "c1", true}, {"third", "t1", true},
			{"sid", "v2", false}, {"sid", "v1x", false}, {"sid", "", false},
			{"csrf", "v1", false}, {"other", "v1", false}, {"third", "v1", false},
		} {
			if got := s.Bound(c.name, c.value); got != c.want {
				t.Fatalf("Bound(%q, %q) = %v, want %v", c.name, c.value, got, c.want)
			}
		}
	}
	// A new value for sid: the remembered v1 no longer counts.
	if !s.UpdateBindings([]Binding{{Name: "sid", Hash: HashValue("v2")}}, nil) {
		t.Fatal("UpdateBindings reported no change")
	}
	if s.Bound("sid", "v1") {
		t.Fatal("the value remembered before the bindings changed is still bound")
	}
	for range 2 { // hashed, then remembered
		if !s.Bound("sid", "v2") {
			t.Fatal("the new value is not bound")
		}
	}
	s.SetBindings(nil)
	if s.Bound("sid", "v2") {
		t.Fatal("bound after the bindings were cleared")
	}
}

// TestBoundRemembersACopy: the value remembered does not keep the request's
// whole Cookie header alive.
func TestBoundRemembersACopy(t *testing.T) {
	s := &Session{}
	s.SetBindings([]Binding{{Name: "sid", Hash: HashValue("abc")}})
	header := "sid=abc; x=1"
	if !s.Bound("sid", header[4:7]) {
		t.Fatal("not bound")
	}
	v := s.seen[0].Load()
	if v == nil || v.value != "abc" {
		t.Fatalf("remembered %+v", v)
	}
	if unsafe.StringData(v.value) == unsafe.StringData(header[4:7]) {
		t.Fatal("the remembered value is a slice of the header")
	}
}
