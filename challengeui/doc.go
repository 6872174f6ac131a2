// Package challengeui renders the gateway's own HTML pages: the two-factor
// challenge, the recovery-code challenge, the account security page (enrolment,
// recovery codes, disable, active sessions), the team admin page (policy,
// session timeout, members, everyone's sessions, audit log, widget identity
// verification) and a plain error page, and serves their static assets.
//
// The package only renders. Handlers in package gateway process the forms,
// check CSRF tokens and validate the next parameter before it reaches a page.
//
// Every page works without JavaScript: forms POST, dialogs are plain
// <dialog open> elements and the background is made inert with the HTML inert
// attribute; confirmations are <details> elements that reveal the real submit
// button. The bundled script only enhances (copy buttons, digit filtering),
// which lets the pages run under a strict Content-Security-Policy with no
// inline script or style.
package challengeui
