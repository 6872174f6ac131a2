package audit

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RepeatWindow is how long repeats of an event that a client can cause at
// will are folded into one record: the first is written at once, and the
// rest of the window's repeats as one more record with a count.
const RepeatWindow = time.Minute

// maxRepeatKeys bounds the events being folded at once (one per type,
// actor, user, address and detail); past it, events are written one by one, and
// the queue's and the store's caps bound them.
const maxRepeatKeys = 10_000

// foldable reports the event types that a client who has not completed a
// sign-in can cause over and over: a password accepted but the challenge
// left, wrong codes, refused sign-ins, and the expiry of abandoned ones.
func foldable(typ string) bool {
	switch typ {
	case TypeSignIn, TypeSignInRefused, TypeChallengeFailed, TypeRecoveryFailed,
		TypeLockout, TypeBindingMismatch, TypeSessionExpired, TypeSignInAbandoned:
		return true
	}
	return false
}

type repeatKey struct{ typ, actor, subject, remote, detail string }

type repeat struct {
	first Event
	until time.Time
	n     int // repeats folded after the first
}

// repeats folds repeated events; see RepeatWindow.
type repeats struct {
	mu sync.Mutex
	m  map[repeatKey]*repeat
}

// fold reports whether e repeats an event recorded within the window, and
// so is only counted.
func (r *repeats) fold(e *Event, now time.Time) bool {
	if !foldable(e.Type) {
		return false
	}
	k := repeatKey{e.Type, e.Actor, e.Subject, e.Remote, detailKey(e.Detail)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.m[k]; ok {
		p.n++
		return true
	}
	if len(r.m) >= maxRepeatKeys {
		return false
	}
	if r.m == nil {
		r.m = map[repeatKey]*repeat{}
	}
	first := *e
	first.Detail = maps.Clone(e.Detail)
	r.m[k] = &repeat{first: first, until: now.Add(RepeatWindow)}
	return false
}

// due removes the windows that ended by now (all of them if all) and
// returns one event for each that folded repeats: the first event's
// fields, with the count in detail "repeated".
func (r *repeats) due(now time.Time, all bool) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for k, p := range r.m {
		if !all && now.Before(p.until) {
			continue
		}
		delete(r.m, k)
		if p.n == 0 {
			continue
		}
		e := p.first
		e.Time = p.until
		if now.Before(p.until) { // Close ends every window early
			e.Time = now
		}
		e.Detail = maps.Clone(p.first.Detail)
		if e.Detail == nil {
			e.Detail = map[string]string{}
		}
		e.Detail["repeated"] = strconv.Itoa(p.n)
		e.Detail["within"] = RepeatWindow.String()
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return out
}

// detailKey is d in one comparable string.
func detailKey(d map[string]string) string {
	if len(d) == 0 {
		return ""
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(d)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(d[k])
		b.WriteByte(0)
	}
	return b.String()
}
