// Package metrics is otpstep's Prometheus instrumentation: one Metrics per
// provider, registered on the registry the host passes in (never the global
// one), counting outcomes where the provider decides them. Collectors here
// also read the outbox backlog and both database pools when scraped.
package metrics

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the counters; README (Operations / Metrics) lists them.
const (
	ChannelMail     = "mail"
	ChannelResponse = "response"

	VerifyPassed  = "passed"
	VerifyWrong   = "wrong"
	VerifyExpired = "expired"
	VerifyBurned  = "burned"
	VerifyLocked  = "locked"

	LoginSuccess       = "success"
	LoginWrongPassword = "wrong_password"
	LoginUnknownUser   = "unknown_user"
	LoginDisabled      = "disabled"
	LoginLimited       = "limited"

	IdentityLinked   = "linked"
	IdentityUnlinked = "unlinked"
	IdentityRefused  = "refused"
)

// Metrics counts what the provider and its outbox decide. A nil *Metrics
// counts nothing, so every method may be called on one.
type Metrics struct {
	codesIssued    *prometheus.CounterVec
	verifications  *prometheus.CounterVec
	refusals       *prometheus.CounterVec
	logins         *prometheus.CounterVec
	identities     *prometheus.CounterVec
	tokens         *prometheus.CounterVec
	deliveries     prometheus.Counter
	droppedExpired prometheus.Counter
	failures       *prometheus.CounterVec
	latency        prometheus.Histogram
	lastDeliveryNS atomic.Int64
	// Back-Channel Logout deliveries.
	logoutsDelivered prometheus.Counter
	logoutsFailed    prometheus.Counter
	logoutsGivenUp   prometheus.Counter
}

// New builds the counters and registers them on reg; with reg nil they are
// kept but exported nowhere. Two providers on one registry share the
// counters (the already registered collector is used).
func New(reg prometheus.Registerer) *Metrics {
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
	}
	return &Metrics{
		codesIssued: vec("otpstep_otp_codes_issued_total",
			"One-time codes issued, by kind (login, account) and channel (mail: by mail only; response: also in the HTTP response).", "kind", "channel"),
		verifications: vec("otpstep_otp_verifications_total",
			"Code verifications, by outcome (passed, wrong, expired, burned, locked).", "outcome"),
		refusals: vec("otpstep_limit_refusals_total",
			"Requests refused by a rate or attempt limit (HTTP 429), by the config key of the limit.", "limit"),
		logins: vec("otpstep_logins_total",
			"Password checks, by outcome (success, wrong_password, unknown_user, disabled, limited).", "outcome"),
		identities: vec("otpstep_linked_identity_events_total",
			"Linked-identity changes, by event (linked, unlinked, refused).", "event"),
		tokens: vec("otpstep_tokens_issued_total",
			"Access tokens issued by otpstep's token endpoint, by grant type.", "grant_type"),
		deliveries: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpstep_outbox_deliveries_total",
			Help: "Mails the mail server accepted.",
		})),
		failures: vec("otpstep_outbox_delivery_failures_total",
			"Failed delivery attempts, by class (dial, auth, rejected, other).", "class"),
		droppedExpired: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpstep_outbox_dropped_expired_total",
			Help: "Mails dropped unsent because they waited in the outbox longer than their code lives (otp.ttl).",
		})),
		logoutsDelivered: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpstep_backchannel_logout_deliveries_total",
			Help: "Logout tokens a client's back-channel logout endpoint accepted (2xx).",
		})),
		logoutsFailed: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpstep_backchannel_logout_failures_total",
			Help: "Failed back-channel logout attempts (no answer within oauth2.backchannel_logout_timeout, or not 2xx); each is retried.",
		})),
		logoutsGivenUp: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otpstep_backchannel_logout_given_up_total",
			Help: "Back-channel logouts given up undelivered, queued longer than oauth2.backchannel_logout_max_age.",
		})),
		latency: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "otpstep_outbox_delivery_latency_seconds",
			Help:    "Time from a mail's queueing (the code's issue) to its acceptance by the mail server.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
		})),
	}
}

// register registers c with reg (nil: none) and returns it, or the collector
// of the same name registered before. A clash with a different collector is
// the host's programming error.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		if already, ok := err.(prometheus.AlreadyRegisteredError); ok { //nolint:errorlint // Register returns it unwrapped
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("metrics: registering: %v", err))
	}
	return c
}

// CodeIssued counts a code of kind stored with its mail.
func (m *Metrics) CodeIssued(kind string, inResponse bool) {
	if m == nil {
		return
	}
	channel := ChannelMail
	if inResponse {
		channel = ChannelResponse
	}
	m.codesIssued.WithLabelValues(kind, channel).Inc()
}

// Verified counts a committed verification's outcome (Verify* constants).
func (m *Metrics) Verified(outcome string) {
	if m != nil {
		m.verifications.WithLabelValues(outcome).Inc()
	}
}

// Refused counts a refusal by the limit whose config key is limit.
func (m *Metrics) Refused(limit string) {
	if m != nil {
		m.refusals.WithLabelValues(limit).Inc()
	}
}

// Login counts a password check's outcome (Login* constants).
func (m *Metrics) Login(outcome string) {
	if m != nil {
		m.logins.WithLabelValues(outcome).Inc()
	}
}

// Identity counts a linked-identity event (Identity* constants).
func (m *Metrics) Identity(event string) {
	if m != nil {
		m.identities.WithLabelValues(event).Inc()
	}
}

// TokenIssued counts an access token issued for grantType.
func (m *Metrics) TokenIssued(grantType string) {
	if m != nil {
		m.tokens.WithLabelValues(grantType).Inc()
	}
}

// Delivered counts a mail accepted at at, queued at queuedAt.
func (m *Metrics) Delivered(queuedAt, at time.Time) {
	if m == nil {
		return
	}
	m.deliveries.Inc()
	m.latency.Observe(max(at.Sub(queuedAt), 0).Seconds())
	m.lastDeliveryNS.Store(at.UnixNano())
}

// DeliveryFailed counts a failed attempt of class (mail.FailureClass).
func (m *Metrics) DeliveryFailed(class string) {
	if m != nil {
		m.failures.WithLabelValues(class).Inc()
	}
}

// DroppedExpired counts a mail dropped unsent because its code expired in
// the outbox.
func (m *Metrics) DroppedExpired() {
	if m != nil {
		m.droppedExpired.Inc()
	}
}

// LastDelivery is when this process last had a mail accepted (zero: never).
func (m *Metrics) LastDelivery() time.Time {
	if m == nil {
		return time.Time{}
	}
	ns := m.lastDeliveryNS.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// LogoutDelivered counts a logout token a client accepted.
func (m *Metrics) LogoutDelivered() {
	if m != nil {
		m.logoutsDelivered.Inc()
	}
}

// LogoutDeliveryFailed counts a failed back-channel logout attempt.
func (m *Metrics) LogoutDeliveryFailed() {
	if m != nil {
		m.logoutsFailed.Inc()
	}
}

// LogoutGivenUp counts a back-channel logout given up past its max age.
func (m *Metrics) LogoutGivenUp() {
	if m != nil {
		m.logoutsGivenUp.Inc()
	}
}
