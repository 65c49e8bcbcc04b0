// Command resource is a small resource server (an API) guarded by package
// resource: it checks otpstep's access tokens by introspection and asks for
// the second factor (RFC 9470 step-up) on the route that moves money. Run it
// beside `otpstep serve`; README.md beside this file walks through the loop.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/otpstep/otpstep/resource"
)

// paymentsMaxAge is how recent the login behind a payment must be.
const paymentsMaxAge = 5 * time.Minute

// NewAPI is the example's routes: GET /balance takes any active token with
// scope openid; POST /payments needs aal2 (the emailed code passed) within
// the last five minutes.
func NewAPI(g *resource.Guard) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /balance", g.Protect(resource.Require{Scopes: []string{"openid"}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := resource.TokenFrom(r.Context())
		writeJSON(w, http.StatusOK, map[string]any{"user": tok.Subject, "balance": "42.00 EUR", "acr": tok.ACR})
	})))
	mux.Handle("POST /payments", g.Protect(resource.Require{Scopes: []string{"openid"}, ACR: "aal2", MaxAge: paymentsMaxAge}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := resource.TokenFrom(r.Context())
		writeJSON(w, http.StatusCreated, map[string]any{"user": tok.Subject, "paid": true, "acr": tok.ACR, "amr": tok.AMR, "auth_time": tok.AuthTime.Unix()})
	})))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// introspectionEndpoint reads introspection_endpoint from the issuer's
// discovery document (RFC 8414 §2).
func introspectionEndpoint(ctx context.Context, client *http.Client, issuer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery: status %d", resp.StatusCode)
	}
	var doc struct {
		IntrospectionEndpoint string `json:"introspection_endpoint"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil || doc.IntrospectionEndpoint == "" {
		return "", fmt.Errorf("discovery: no introspection_endpoint (%v)", err)
	}
	return doc.IntrospectionEndpoint, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on")
	issuer := flag.String("issuer", "http://127.0.0.1:4444", "otpstep's issuer (server.public_url)")
	clientID := flag.String("client-id", "", "the resource server's client id at otpstep (the secret is read from RESOURCE_CLIENT_SECRET)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *listen, *issuer, *clientID, os.Getenv("RESOURCE_CLIENT_SECRET")); err != nil {
		fmt.Fprintln(os.Stderr, "resource:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, issuer, clientID, secret string) error {
	if clientID == "" || secret == "" {
		return errors.New("-client-id and RESOURCE_CLIENT_SECRET are required")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	endpoint, err := introspectionEndpoint(ctx, client, issuer)
	if err != nil {
		return err
	}
	guard, err := resource.New(resource.Config{
		IntrospectionURL: endpoint, ClientID: clientID, ClientSecret: secret, HTTPClient: client,
		CacheTTL: 10 * time.Second, // a revoked token is accepted at most 10 s longer
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: NewAPI(guard), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Printf("resource server on http://%s, introspecting at %s\n", ln.Addr(), endpoint)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
