package mfa

import (
	"strconv"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/audit"
)

// DoctorRun records a configuration check an admin ran from the admin
// page: who ran it, the app account it signed in as, and its result (the
// verdict, or why there was none). The password is never passed here.
func (r *Realm) DoctorRun(a Actor, testUser, result string, requests int) {
	r.record(a, audit.TypeDoctorRun, testUser, map[string]string{
		"scope": r.Scope(), "result": result, "requests": strconv.Itoa(requests),
	})
	r.decision(a, "configuration check run", zap.String("admin", a.User), zap.String("test_user", testUser),
		zap.String("result", result), zap.Int("requests", requests))
}
