package plugin

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// Handler serves the plugin's routes under prefix, for a host on any
// router: the routes Mount registers, on a router of the plugin's own.
// Embedded, prefix is the plain path the host mounts it at ("/mfa", or ""
// for the root), e.g. on net/http's ServeMux:
//
//	mux.Handle("/mfa/", p.Handler("/mfa"))
//
// The handler sees the whole path (do not strip the prefix), and the pages
// link and redirect under it. Standalone, prefix must be "": otpstep serves
// every route at the root. Paths are not cleaned before otpstep answers them
// (as Mount's SkipClean(true) note says), though a ServeMux host cleans them
// itself with a 301 before the handler runs. A prefix that is not a plain
// path panics, as ServeMux does on a bad pattern. Call Handler or Mount
// once.
func (p *Plugin) Handler(prefix string) http.Handler {
	if prefix != "" && (!strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.ContainsAny(prefix, "{}?#\\")) {
		panic("plugin: Handler: prefix " + prefix + ` is not "" or a plain path like "/mfa"`)
	}
	r := mux.NewRouter().SkipClean(true)
	if !p.Provider.Embedded() {
		if prefix != "" {
			panic("plugin: Handler: standalone otpstep serves at the root; prefix must be empty")
		}
		p.web.Mount(r)
		return r
	}
	sub := r
	if prefix != "" {
		sub = r.PathPrefix(prefix).Subrouter()
	}
	p.web.MountSecondFactor(sub)
	return r
}
