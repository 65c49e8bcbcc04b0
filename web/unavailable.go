package web

import (
	"context"
	"net/http"
	"time"

	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web/jsonapi"
)

// unavailableRetryAfter is the Retry-After of every 503 for an unavailable
// database.
const unavailableRetryAfter = 5 * time.Second

// unavailablePageMessage is the error page's message for an unavailable database.
const unavailablePageMessage = "error.unavailable"

// unavailableDescription is the error_description of an OAuth2 503.
const unavailableDescription = "The authorization server is temporarily unavailable. Try again later."

// NoteStorageUnavailable gives each request a note in which the storage
// records any failure to reach the database (storage.WithUnavailableNote),
// so a handler can tell an outage from a verdict even after fosite has
// turned the storage error into "not found", invalid_client or an inactive
// token. Place it inside RequestID.
func NoteStorageUnavailable(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(storage.WithUnavailableNote(r.Context())))
	})
}

// storageUnavailable reports whether err, or any storage work of the request
// so far, failed because the database is unavailable; if so it logs err at
// error level with the request id.
func (s *Server) storageUnavailable(ctx context.Context, path string, err error) bool {
	if err == nil || !storage.IsUnavailable(ctx, err) {
		return false
	}
	s.log.ErrorContext(ctx, "database unavailable", "request_id", RequestIDFrom(ctx), "path", path, "err", err)
	return true
}

// setUnavailableRetryAfter sets the Retry-After of a 503 for an unavailable database.
func setUnavailableRetryAfter(w http.ResponseWriter) {
	jsonapi.SetRetryAfter(w.Header(), unavailableRetryAfter)
}

// oauth2Unavailable answers an OAuth2 endpoint (token, introspection,
// revocation, userinfo) whose storage work found the database
// unavailable: 503 with Retry-After and the RFC 6749 error
// temporarily_unavailable, never a verdict about the token or the client.
// It reports false, writing nothing, when the database was not the cause.
func (s *Server) oauth2Unavailable(w http.ResponseWriter, r *http.Request, err error) bool {
	if !s.storageUnavailable(r.Context(), r.URL.Path, err) {
		return false
	}
	setUnavailableRetryAfter(w)
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{
		"error":             "temporarily_unavailable",
		"error_description": unavailableDescription,
	})
	return true
}
