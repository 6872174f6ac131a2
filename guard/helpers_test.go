package guard

import (
	"net/http"
	"time"

	"github.com/mfagate/mfagate/mfa"
)

// lookup is the guard's session lookup for a request, as ServeHTTP does it.
func (g *Guard) lookup(r *http.Request, now time.Time) mfa.Current {
	return g.realm.Lookup(g.jar.Value(r), now)
}
