package plugintest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Browser is a cookie-keeping HTTP client that follows redirects by hand, so
// it can stop at the relying party's redirect URI and fill in forms.
type Browser struct {
	T      *testing.T
	Client *http.Client
	// Steps records every URL visited, for failure messages.
	Steps []string
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser(t *testing.T) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{T: t, Client: NoRedirectClient(jar)}
}

// Page is a response the browser stopped at.
type Page struct {
	URL    *url.URL
	Status int
	Body   string
	Header http.Header
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// CSRFToken is the token of the page's form.
func (p *Page) CSRFToken() string {
	m := csrfRe.FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return htmlUnescape(m[1])
}

func htmlUnescape(s string) string {
	r := strings.NewReplacer("&#43;", "+", "&#x2B;", "+", "&#61;", "=", "&amp;", "&", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">", "&#x3D;", "=")
	return r.Replace(s)
}

// HiddenField returns the value of the named hidden input.
func (p *Page) HiddenField(name string) string {
	re := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `"[^>]*value="([^"]*)"`)
	m := re.FindStringSubmatch(p.Body)
	if m == nil {
		re = regexp.MustCompile(`value="([^"]*)"[^>]*name="` + regexp.QuoteMeta(name) + `"`)
		m = re.FindStringSubmatch(p.Body)
	}
	if m == nil {
		return ""
	}
	return htmlUnescape(m[1])
}

// Follow GETs raw and follows redirects until a page that is not a redirect,
// or a redirect whose target starts with stopAt (returned unfollowed).
func (b *Browser) Follow(raw, stopAt string) *Page {
	b.T.Helper()
	return b.do(http.MethodGet, raw, nil, stopAt)
}

// Submit POSTs a form (adding the page's CSRF token) and follows redirects.
func (b *Browser) Submit(from *Page, action string, form url.Values, stopAt string) *Page {
	b.T.Helper()
	if form.Get("csrf_token") == "" {
		form.Set("csrf_token", from.CSRFToken())
	}
	target := from.URL.ResolveReference(&url.URL{Path: action})
	if u, err := url.Parse(action); err == nil && u.RawQuery != "" {
		target = from.URL.ResolveReference(u)
	}
	return b.do(http.MethodPost, target.String(), form, stopAt)
}

func (b *Browser) do(method, raw string, form url.Values, stopAt string) *Page {
	b.T.Helper()
	for i := 0; i < 20; i++ {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, raw, body)
		if err != nil {
			b.T.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", req.URL.Scheme+"://"+req.URL.Host)
		}
		req.Header.Set("Accept", "text/html")
		b.Steps = append(b.Steps, method+" "+raw)
		resp, err := b.Client.Do(req)
		if err != nil {
			b.T.Fatalf("%s %s: %v (steps %v)", method, raw, err, b.Steps)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc, err := req.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				b.T.Fatal(err)
			}
			if stopAt != "" && strings.HasPrefix(loc.String(), stopAt) {
				return &Page{URL: loc, Status: resp.StatusCode, Header: resp.Header}
			}
			raw, method, form = loc.String(), http.MethodGet, nil
			continue
		}
		return &Page{URL: req.URL, Status: resp.StatusCode, Body: string(data), Header: resp.Header}
	}
	b.T.Fatalf("too many redirects: %v", b.Steps)
	return nil
}

// String describes the page for failure messages.
func (p *Page) String() string {
	body := p.Body
	if len(body) > 600 {
		body = body[:600] + "…"
	}
	return fmt.Sprintf("%d %s\n%s", p.Status, p.URL, body)
}
