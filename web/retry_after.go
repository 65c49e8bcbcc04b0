package web

import (
	"net/http"
	"strconv"
	"time"
)

// unavailableRetryAfter is the Retry-After of every 503: readiness while the
// database is down or the server drains, and an upstream that cannot be
// reached.
const unavailableRetryAfter = 5 * time.Second

// setUnavailableRetryAfter sets the Retry-After of a 503.
func setUnavailableRetryAfter(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(int(unavailableRetryAfter/time.Second)))
}
