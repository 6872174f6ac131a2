package mfa

import (
	"strconv"

	"github.com/mfagate/mfagate/audit"
)

// DoctorRun records a configuration check an admin ran from the admin
// page: who ran it, the app account it signed in as, and its result (the
// verdict, or why there was none). The password is never passed here. The
// page logs the run itself, with how long it took.
func (r *Realm) DoctorRun(a Actor, testUser, result string, requests int) {
	r.record(a, audit.TypeDoctorRun, testUser, map[string]string{
		"scope": r.Scope(), "result": result, "requests": strconv.Itoa(requests),
	})
}
