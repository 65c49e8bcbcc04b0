package web

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/provider/config"
)

// cssVars reads the custom properties of otpstep.css, resolved to #rrggbb:
// light (:root) and dark (the prefers-color-scheme: dark block over it)
// mode. A value may be a colour, var(--x) or color-mix(in srgb, A p%, B).
func cssVars(t *testing.T) (light, dark map[string]string) {
	t.Helper()
	b, err := staticFS.ReadFile("static/otpstep.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	i := strings.Index(css, "@media (prefers-color-scheme: dark)")
	if i < 0 {
		t.Fatal("otpstep.css has no dark mode")
	}
	re := regexp.MustCompile(`--([a-z-]+):\s*([^;]+);`)
	read := func(s string, into map[string]string) map[string]string {
		for _, g := range re.FindAllStringSubmatch(s, -1) {
			into[g[1]] = strings.TrimSpace(g[2])
		}
		return into
	}
	lightRaw := read(css[:i], map[string]string{})
	darkRaw := read(css[i:], read(css[:i], map[string]string{}))
	return resolveAll(t, lightRaw), resolveAll(t, darkRaw)
}

// resolveAll resolves every property of raw to #rrggbb.
func resolveAll(t *testing.T, raw map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k := range raw {
		v, err := resolveColor(raw, raw[k], 0)
		if err != nil {
			t.Fatalf("--%s: %v", k, err)
		}
		out[k] = v
	}
	return out
}

var (
	hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	cssVar   = regexp.MustCompile(`^var\(--([a-z-]+)\)$`)
	colorMix = regexp.MustCompile(`^color-mix\(in srgb,\s*(.+?)\s+([0-9.]+)%,\s*(.+?)\)$`)
)

// resolveColor resolves one value as a browser does for these forms:
// color-mix in srgb mixes the gamma-encoded channels, p% of A and the rest
// of B.
func resolveColor(raw map[string]string, v string, depth int) (string, error) {
	if depth > 8 {
		return "", fmt.Errorf("%q: var() loop", v)
	}
	switch {
	case hexColor.MatchString(v):
		return strings.ToLower(v), nil
	case cssVar.MatchString(v):
		name := cssVar.FindStringSubmatch(v)[1]
		next, ok := raw[name]
		if !ok {
			return "", fmt.Errorf("var(--%s) is not defined", name)
		}
		return resolveColor(raw, next, depth+1)
	case colorMix.MatchString(v):
		m := colorMix.FindStringSubmatch(v)
		a, err := resolveColor(raw, m[1], depth+1)
		if err != nil {
			return "", err
		}
		b, err := resolveColor(raw, m[3], depth+1)
		if err != nil {
			return "", err
		}
		p, _ := strconv.ParseFloat(m[2], 64)
		var out strings.Builder
		out.WriteString("#")
		for i := 1; i < 7; i += 2 {
			ca, _ := strconv.ParseUint(a[i:i+2], 16, 8)
			cb, _ := strconv.ParseUint(b[i:i+2], 16, 8)
			fmt.Fprintf(&out, "%02x", int(math.Round(float64(ca)*p/100+float64(cb)*(1-p/100))))
		}
		return out.String(), nil
	}
	return "", fmt.Errorf("%q is not a colour this test reads (#rrggbb, var(), color-mix in srgb)", v)
}

func contrast(a, b string) float64 {
	la, lb := config.RelativeLuminance(a), config.RelativeLuminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// interactiveStateChecks are the colour pairs of every interactive state
// of the pages: text 4.5:1 (WCAG 2.2 1.4.3), the focus ring, borders and
// other states of a control 3:1 (1.4.11).
func interactiveStateChecks(v map[string]string) []struct {
	what, fg, bg string
	min          float64
} {
	return []struct {
		what, fg, bg string
		min          float64
	}{
		// Focus: the ring (outline-offset 2px, so it stands on what is
		// around the control).
		{"focus ring on the card", v["focus"], v["card"], 3},
		{"focus ring on the page (the footer's link)", v["focus"], v["bg"], 3},
		{"focus ring beside a primary button", v["focus"], v["accent"], 1}, // the offset puts card between them
		{"focused input's border on the card", v["accent"], v["card"], 3},
		// At rest.
		{"button text on a primary button", v["accent-fg"], v["accent"], 4.5},
		{"secondary button and link text", v["accent"], v["card"], 4.5},
		{"link text on the page (the footer)", v["fg"], v["bg"], 4.5},
		{"button edge on the card", v["accent"], v["card"], 3},
		{"input border on the card", v["muted"], v["card"], 3},
		// Hover.
		{"hovered primary button's text", v["accent-fg"], v["accent-hover"], 4.5},
		{"hovered primary button's edge on the card", v["accent-hover"], v["card"], 3},
		{"hovered secondary button's text", v["accent-hover"], v["tint"], 4.5},
		{"hovered secondary button's edge", v["accent"], v["tint"], 3},
		{"hovered link on the card", v["accent-hover"], v["card"], 4.5},
		{"hovered link on the page", v["accent-hover"], v["bg"], 4.5},
		{"hovered input's border", v["fg"], v["card"], 3},
		// Active (pressed).
		{"pressed primary button's text", v["accent-fg"], v["accent-active"], 4.5},
		{"pressed primary button's edge on the card", v["accent-active"], v["card"], 3},
		{"pressed secondary button's text", v["accent-active"], v["tint"], 4.5},
		{"pressed secondary button's edge", v["accent-active"], v["tint"], 3},
		{"pressed link on the card", v["accent-active"], v["card"], 4.5},
		{"pressed link on the page", v["accent-active"], v["bg"], 4.5},
		// Disabled (WCAG exempts it; otpstep keeps it readable anyway).
		{"disabled button's text", v["muted"], v["bg"], 4.5},
		{"disabled button's edge on the card", v["muted"], v["card"], 3},
		// Error.
		{"error text on its background", v["error"], v["error-bg"], 4.5},
		{"invalid input's border on the card", v["error"], v["card"], 3},
		{"text on a notice", v["fg"], v["notice-bg"], 4.5},
		{"hint text on the card", v["muted"], v["card"], 4.5},
	}
}

// TestCSS_InteractiveStatesContrast: the focus ring and every interactive
// state (rest, hover, active, focus, disabled, error) reach 3:1 against what
// surrounds them (WCAG 2.2 1.4.11), and their text 4.5:1 (1.4.3), in light
// and dark mode, and in light mode with the darkest ui.primary_color
// refuses (exactly config.MinPrimaryContrast with white), whose hover and
// pressed colours otpstep.css derives.
func TestCSS_InteractiveStatesContrast(t *testing.T) {
	light, dark := cssVars(t)
	// The palest accent ui.primary_color admits: grey of 4.5:1 with white.
	floor := ""
	for g := 255; g >= 0; g-- {
		c := fmt.Sprintf("#%02x%02x%02x", g, g, g)
		if config.ContrastWithWhite(c) >= config.MinPrimaryContrast {
			floor = c
			break
		}
	}
	branded := brandedVars(t, floor)
	for mode, v := range map[string]map[string]string{"light": light, "dark": dark, "light with ui.primary_color " + floor: branded} {
		for _, c := range interactiveStateChecks(v) {
			if c.fg == "" || c.bg == "" {
				t.Errorf("%s: %s: a colour is missing", mode, c.what)
				continue
			}
			if got := contrast(c.fg, c.bg); got < c.min {
				t.Errorf("%s: %s: %s on %s is %.2f:1, want at least %.1f:1", mode, c.what, c.fg, c.bg, got, c.min)
			}
		}
	}
}

// brandedVars is light mode with --accent set to color, as brand.css does.
func brandedVars(t *testing.T, color string) map[string]string {
	t.Helper()
	b, err := staticFS.ReadFile("static/otpstep.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	css = css[:strings.Index(css, "@media (prefers-color-scheme: dark)")]
	raw := map[string]string{}
	for _, g := range regexp.MustCompile(`--([a-z-]+):\s*([^;]+);`).FindAllStringSubmatch(css, -1) {
		raw[g[1]] = strings.TrimSpace(g[2])
	}
	raw["accent"] = color
	return resolveAll(t, raw)
}

// TestCSS_StatesUseTheVariables: every state rule the contrast test
// assumes is in otpstep.css, so a changed rule cannot leave the test
// checking colours no page uses.
func TestCSS_StatesUseTheVariables(t *testing.T) {
	b, err := staticFS.ReadFile("static/otpstep.css")
	if err != nil {
		t.Fatal(err)
	}
	css := strings.Join(strings.Fields(string(b)), " ")
	for _, rule := range []string{
		"button:hover, .button:hover { background: var(--accent-hover); border-color: var(--accent-hover); }",
		"button:active, .button:active { background: var(--accent-active); border-color: var(--accent-active); }",
		"button.secondary:hover, .button.secondary:hover { color: var(--accent-hover); background: var(--tint); }",
		"button.secondary:active, .button.secondary:active { color: var(--accent-active); background: var(--tint); border-color: var(--accent-active); }",
		"a:hover { color: var(--accent-hover); }",
		"a:active { color: var(--accent-active); }",
		".support a { color: var(--fg); }",
		".support a:hover { color: var(--accent-hover); }",
		":focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }",
		"input:hover { border-color: var(--fg); }",
		"input:focus-visible { border-color: var(--accent); }",
		`input[aria-invalid="true"] { border: 2px solid var(--error); }`,
		"color: var(--muted); background: var(--bg); border-color: var(--muted); cursor: not-allowed;",
		"[hidden] { display: none !important; }",
	} {
		if !strings.Contains(css, rule) {
			t.Errorf("otpstep.css lacks %q", rule)
		}
	}
	if strings.Contains(css, "filter:") {
		t.Error("otpstep.css changes a colour with filter:, which the contrast test cannot read")
	}
}
