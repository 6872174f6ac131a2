package mfa

import "github.com/mfagate/mfagate/audit"

// Actor is who asks for an operation: the audit log records it, and wrong
// codes are counted against its address.
type Actor struct {
	User    string // the signed-in (or signing-in) user; audit.ActorSystem or ActorCLI for the gateway and the operator
	Address string // client address, as Caddy resolved it
	Agent   string // user agent
}

// Operator is the operator at the command line or Caddy's admin endpoint.
var Operator = Actor{User: audit.ActorCLI}

// System is the gateway itself (sweeps, grace-period logouts).
var System = Actor{User: audit.ActorSystem}

// event is an audit event by a.
func (a Actor) event(typ, subject string, detail map[string]string) audit.Event {
	return audit.Event{Type: typ, Actor: a.User, Subject: subject, Remote: a.Address, UserAgent: a.Agent, Detail: detail}
}
