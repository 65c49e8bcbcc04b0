package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/google/uuid"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// A scenario is one line of output. prepare runs once, before the warm-up,
// and returns the request every worker sends and how to check a response.
//
// To add a scenario, write one func(ctx, *env) (load, error) and list it in
// scenarios. env gives the base URL, the HTTP client, the confidential
// client's credentials and, when the server runs in this process, the
// *plugin.Plugin (e.Plugin) to create users, sessions or tokens directly.
type scenario struct {
	name    string
	prepare func(ctx context.Context, e *env) (load, error)
	// run, when not nil, replaces prepare: a scenario that is not an HTTP
	// load measures and prints itself, and reports false when it failed.
	run func(ctx context.Context, e *env) (bool, error)
}

// scenarios run in this order unless -scenarios says otherwise.
var scenarios = []scenario{
	{name: "client_credentials", prepare: clientCredentials},
	{name: "introspection", prepare: introspection},
	{name: "put_session", prepare: putSession},
	{name: "verify_otp", prepare: verifyOTP},
	{name: "outbox_drain", run: outboxDrain},
}

// load is what a scenario hands to vegeta: one request, sent over and over,
// and a check of each response (status and body); a check error counts as a
// failed request.
type load struct {
	// target's URL is a path; the env's base URL is prepended.
	target vegeta.Target
	// next, when not nil, replaces target: it is called for every request,
	// from concurrent workers, and fills in the request (its URL a path
	// too). vegeta.ErrNoTargets means it has nothing left: the warm-up or
	// run ends early, and the line after it says so.
	next  vegeta.Targeter
	check func(status int, body []byte) error
	// observe, when not nil, sees every result (warm-up and run; Attack
	// names which) after check.
	observe func(r *vegeta.Result)
	// after, when not nil, runs after the measured run (not the warm-up)
	// and may print "bench: <name> key=value" lines.
	after func(ctx context.Context) error
	// floor, when not nil, is measured after the scenario (floor.go).
	floor *floor
}

// clientCredentials is RFC 6749 §4.4: POST /oauth2/token with HTTP basic
// client authentication; every request mints and stores an access token.
func clientCredentials(_ context.Context, e *env) (load, error) {
	return load{
		target: e.formPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}),
		check: func(status int, body []byte) error {
			if err := wantStatus(status, http.StatusOK, body); err != nil {
				return err
			}
			if !bytes.Contains(body, []byte(`"access_token"`)) {
				return fmt.Errorf("no access_token in %s", short(body))
			}
			return nil
		},
	}, nil
}

// introspection is RFC 7662: one access token is minted, then every request
// introspects it with client authentication and must find it active.
func introspection(ctx context.Context, e *env) (load, error) {
	token, err := e.clientCredentialsToken(ctx)
	if err != nil {
		return load{}, err
	}
	return load{
		target: e.formPost("/oauth2/introspect", url.Values{"token": {token}}),
		check: func(status int, body []byte) error {
			if err := wantStatus(status, http.StatusOK, body); err != nil {
				return err
			}
			if !bytes.Contains(body, []byte(`"active":true`)) {
				return fmt.Errorf("token not active: %s", short(body))
			}
			return nil
		},
	}, nil
}

// putSession is PUT {api.prefix}/sessions/{sessionId} with
// passedLoginOTP=false on an unknown session: what a login UI calls after
// the password step. Every request has a fresh session id, so every one
// creates the login session and issues its login OTP (two rate counters,
// the challenge and its mail in one transaction, two audit rows) and
// answers 200 with the code. Requests go round-robin over the -users users,
// each with its own token (scope user:sessions:update, sid of its login).
// The outbox dispatcher delivers the mail over SMTP to the bench's peer
// meanwhile; lingerAfterLoad after the run the delivery latency of the run's
// codes (request sent → mail accepted) is printed, then the backlog left and
// how long it took to drain.
func putSession(ctx context.Context, e *env) (load, error) {
	users, err := e.benchUsers(ctx)
	if err != nil {
		return load{}, err
	}
	if err := e.analyze(ctx); err != nil {
		return load{}, err
	}
	paths := e.Plugin.Provider.Config().API.Paths()
	prefix := paths[len(paths)-1]
	headers := make([]http.Header, len(users))
	bodies := make([][]byte, len(users))
	for i, u := range users {
		headers[i] = bearerJSON(u.token, "application/json")
		bodies[i], _ = json.Marshal(map[string]any{"userId": u.user.ID, "passedLoginOTP": false})
	}
	var n atomic.Uint64
	lat := newDeliveryLatency("put_session")
	e.peer.setOnAccept(lat.onAccept)
	return load{
		next: func(t *vegeta.Target) error {
			i := (n.Add(1) - 1) % uint64(len(users))
			sid := uuid.NewString()
			lat.sent(sid, users[i].user.Email)
			*t = vegeta.Target{Method: http.MethodPut, URL: prefix + "/sessions/" + sid, Body: bodies[i], Header: headers[i]}
			return nil
		},
		observe: lat.observe,
		check: func(status int, body []byte) error {
			if err := wantStatus(status, http.StatusOK, body); err != nil {
				return err
			}
			if !bytes.Contains(body, []byte(`"otp":"`)) {
				return fmt.Errorf("no otp in %s", short(body))
			}
			return nil
		},
		after: func(ctx context.Context) error {
			lat.report(ctx, "put_session", e.peer)
			return e.outboxReport(ctx, "put_session")
		},
		floor: putSessionFloor(e, users),
	}, nil
}

// verifyOTP is POST {api.prefix}/user/otp/verify with the right code of a
// live login challenge ({"otp":<code>,"types":["login"]}, 204): the
// challenge is consumed and its session passes the second factor. Each
// request needs its own challenge, so -otp-challenges sessions with a
// challenge and a token (scope user:otp:verify, sid of that session) are
// created before the warm-up through Provider.UpdateSessionOTP, round-robin
// over the -users users, and their mail delivered; every request uses the
// next one, once. Warm-up and run end early when they run out.
func verifyOTP(ctx context.Context, e *env) (load, error) {
	users, err := e.benchUsers(ctx)
	if err != nil {
		return load{}, err
	}
	items, err := e.newChallenges(ctx, "verify_otp", users, e.f.challenges)
	if err != nil {
		return load{}, err
	}
	if len(items) == 0 {
		return load{}, errors.New("no challenge created")
	}
	if err := e.analyze(ctx); err != nil {
		return load{}, err
	}
	fmt.Printf("bench: verify_otp variant=right_code challenges=%d users=%d\n", len(items), len(users))
	paths := e.Plugin.Provider.Config().API.Paths()
	path := paths[len(paths)-1] + "/user/otp/verify"
	var n atomic.Uint64
	return load{
		next: func(t *vegeta.Target) error {
			i := n.Add(1) - 1
			if i >= uint64(len(items)) {
				return vegeta.ErrNoTargets
			}
			it := &items[i]
			body, _ := json.Marshal(map[string]any{"otp": it.code, "types": []string{"login"}})
			*t = vegeta.Target{Method: http.MethodPost, URL: path, Body: body, Header: bearerJSON(it.token, "application/vnd.api+json")}
			return nil
		},
		check: func(status int, body []byte) error {
			return wantStatus(status, http.StatusNoContent, body)
		},
		floor: verifyOTPFloor(e, users, items),
	}, nil
}

// bearerJSON is the headers of a user API call with a JSON body.
func bearerJSON(token, contentType string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set("Content-Type", contentType)
	h.Set("Accept", "application/vnd.api+json, application/json")
	return h
}

// formPost is a form-encoded POST authenticated as the bench's client with
// client_secret_basic (RFC 6749 §2.3.1: id and secret form-encoded first).
func (e *env) formPost(path string, form url.Values) vegeta.Target {
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("Accept", "application/json")
	h.Set("Authorization", e.basicAuth())
	return vegeta.Target{Method: http.MethodPost, URL: path, Body: []byte(form.Encode()), Header: h}
}

func (e *env) basicAuth() string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(url.QueryEscape(e.clientID), url.QueryEscape(e.clientSecret))
	return r.Header.Get("Authorization")
}

// clientCredentialsToken mints one access token through the HTTP API.
func (e *env) clientCredentialsToken(ctx context.Context) (string, error) {
	tgt := e.formPost("/oauth2/token", url.Values{"grant_type": {"client_credentials"}})
	req, err := http.NewRequestWithContext(ctx, tgt.Method, e.baseURL+tgt.URL, strings.NewReader(string(tgt.Body)))
	if err != nil {
		return "", err
	}
	req.Header = tgt.Header
	resp, err := e.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("mint access token: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("mint access token: status %d: %s", resp.StatusCode, short(body))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("mint access token: no access_token in %s", short(body))
	}
	return tok.AccessToken, nil
}

func scenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

func pickScenarios(list string) ([]scenario, error) {
	var out []scenario
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := false
		for _, s := range scenarios {
			if s.name == name {
				out, found = append(out, s), true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(scenarioNames(), ", "))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario chosen (have %s)", strings.Join(scenarioNames(), ", "))
	}
	return out, nil
}
