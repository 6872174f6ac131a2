package mfa

import (
	"sync/atomic"

	"github.com/mfagate/mfagate/identity"
)

// Stats counts the service's security events for monitoring. The counters
// are plain atomics owned by the Service, so they outlive config reloads
// with it and cost the request path one atomic add; whoever exports them
// reads a Snapshot. Each event is counted in exactly one place, where it is
// decided. No counter is keyed by a user, an address or any value a client
// chooses: every label is one of the fixed names below.
type Stats struct {
	signIns    [numSignInResults]atomic.Uint64
	challenges [numMethods][numChallengeResults]atomic.Uint64
	lockouts   [numLockouts]atomic.Uint64
	widget     [numModes][]atomic.Uint64 // by mode, then widget result slot
	causeSlot  map[identity.Cause]int    // a cause's widget result slot; read-only once built
}

func newStats() *Stats {
	s := &Stats{causeSlot: make(map[identity.Cause]int)}
	for i, c := range identity.Causes() {
		s.causeSlot[c] = widgetFirstCause + i
	}
	for m := range s.widget {
		s.widget[m] = make([]atomic.Uint64, widgetFirstCause+len(s.causeSlot))
	}
	return s
}

// Stats is the service's event counters.
func (svc *Service) Stats() *Stats { return svc.stats }

// signInResult is how a sign-in the app accepted (or seemed to) ended.
type signInResult uint8

const (
	signInNoFactor   signInResult = iota // active without a second factor
	signInChallenged                     // pending: the second factor is asked
	signInMustEnrol                      // active, blocked until 2FA is set up
	signInRefused                        // the gateway could not attribute it: failed closed
	signInRejected                       // the app did not accept the credentials
	signInError                          // the session could not be started (store)
	numSignInResults
)

func signInNames() [numSignInResults]string {
	return [...]string{"no_factor", "challenged", "must_enrol", "refused", "rejected", "error"}
}

// challengeMethod is how a pending sign-in answered its challenge.
type challengeMethod uint8

const (
	methodTOTP challengeMethod = iota
	methodRecovery
	methodEmail
	methodSMS
	numMethods
)

func methodNames() [numMethods]string { return [...]string{"totp", "recovery", "email", "sms"} }

// statsMethod is the stats label of a sent-code method.
func statsMethod(method string) challengeMethod {
	if method == MethodSMS {
		return methodSMS
	}
	return methodEmail
}

// challengeResult is the outcome of one challenge answer.
type challengeResult uint8

const (
	challengeOK              challengeResult = iota
	challengeWrong                           // a wrong code
	challengeReplayed                        // a code already used in its time step
	challengeMalformed                       // not a code at all
	challengeLocked                          // refused: the user, address or authenticator is locked
	challengeNoAuthenticator                 // the authenticator was removed: a recovery code is needed
	challengeError                           // the store or another fault
	numChallengeResults
)

func challengeNames() [numChallengeResults]string {
	return [...]string{"ok", "wrong", "replayed", "malformed", "locked", "no_authenticator", "error"}
}

// lockout is what a run of wrong codes locked.
type lockout uint8

const (
	lockUserAttempts    lockout = iota // the user's attempts in the window ran out
	lockAddressAttempts                // the address's attempts in the window ran out
	lockAuthenticator                  // the authenticator locked until an admin unlocks it
	numLockouts
)

func lockoutNames() [numLockouts]string {
	return [...]string{"user_attempts", "address_attempts", "authenticator"}
}

// The widget results: the verdict when there is no cause, else the cause.
const (
	widgetVerified   = iota
	widgetAnonymous  // no claimed user
	widgetUnchecked  // a claimed user, checks off (mode off)
	widgetBadRequest // the claim could not be read (body too large): refused unchecked
	widgetOtherCause // a cause this build does not list
	widgetFirstCause // then identity.Causes(), in order
)

const numModes = 3

func modeNames() [numModes]identity.Mode {
	return [...]identity.Mode{identity.Off, identity.Monitor, identity.Enforce}
}

func modeIndex(m identity.Mode) int {
	switch m {
	case identity.Monitor:
		return 1
	case identity.Enforce:
		return 2
	}
	return 0
}

func (s *Stats) signIn(r signInResult) { s.signIns[r].Add(1) }

func (s *Stats) challenge(m challengeMethod, r challengeResult) { s.challenges[m][r].Add(1) }

func (s *Stats) lockout(l lockout) { s.lockouts[l].Add(1) }

// SignInRejected counts a sign-in the app did not accept: the request
// guard sees that, the domain never does.
func (s *Stats) SignInRejected() { s.signIn(signInRejected) }

// Widget counts one widget identity check as identity.Service.Check
// returned it.
func (s *Stats) Widget(mode identity.Mode, v identity.Verdict, c identity.Cause) {
	slot := widgetOtherCause
	switch {
	case v == identity.Verified:
		slot = widgetVerified
	case v == identity.Anonymous:
		slot = widgetAnonymous
	case c == "":
		slot = widgetUnchecked
	default:
		if i, ok := s.causeSlot[c]; ok {
			slot = i
		}
	}
	s.widget[modeIndex(mode)][slot].Add(1)
}

// WidgetUnreadable counts a widget request refused before its check
// because its claim could not be read.
func (s *Stats) WidgetUnreadable(mode identity.Mode) {
	s.widget[modeIndex(mode)][widgetBadRequest].Add(1)
}

// Count is one counter's value under its label values.
type Count struct {
	Labels []string
	N      uint64
}

// StatsSnapshot is the counters at one moment. Series come in a fixed order
// for a given build, so snapshots of several services add up series by
// series (Add).
type StatsSnapshot struct {
	SignIns    []Count // outcome
	Challenges []Count // method, result
	Lockouts   []Count // kind
	Widget     []Count // mode, result
}

// Snapshot reads the counters. Every sign-in, challenge and lock-out
// series is present, zero or not; widget series are all present too (a
// mode and result that cannot meet just stay at zero).
func (s *Stats) Snapshot() StatsSnapshot {
	var out StatsSnapshot
	for i, name := range signInNames() {
		out.SignIns = append(out.SignIns, Count{[]string{name}, s.signIns[i].Load()})
	}
	for m, method := range methodNames() {
		for r, result := range challengeNames() {
			out.Challenges = append(out.Challenges, Count{[]string{method, result}, s.challenges[m][r].Load()})
		}
	}
	for i, name := range lockoutNames() {
		out.Lockouts = append(out.Lockouts, Count{[]string{name}, s.lockouts[i].Load()})
	}
	results := []string{"verified", "anonymous", "unchecked", "bad_request", "other"}
	for _, c := range identity.Causes() {
		results = append(results, string(c))
	}
	for m, mode := range modeNames() {
		for i, result := range results {
			out.Widget = append(out.Widget, Count{[]string{string(mode), result}, s.widget[m][i].Load()})
		}
	}
	return out
}

// Add adds o's counts to s's, series by series. Both must come from
// Snapshot of this build (the same series in the same order).
func (s *StatsSnapshot) Add(o StatsSnapshot) {
	add := func(dst, src []Count) {
		for i := range dst {
			dst[i].N += src[i].N
		}
	}
	add(s.SignIns, o.SignIns)
	add(s.Challenges, o.Challenges)
	add(s.Lockouts, o.Lockouts)
	add(s.Widget, o.Widget)
}
