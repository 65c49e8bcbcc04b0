package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

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
}

// scenarios run in this order unless -scenarios says otherwise.
var scenarios = []scenario{
	{"client_credentials", clientCredentials},
	{"introspection", introspection},
}

// load is what a scenario hands to vegeta: one request, sent over and over,
// and a check of each response (status and body); a check error counts as a
// failed request.
type load struct {
	// target's URL is a path; the env's base URL is prepended.
	target vegeta.Target
	check  func(status int, body []byte) error
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
