package web

import (
	"regexp"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/provider/config"
)

// cssVars reads the custom properties of otpstep.css: light (:root) and
// dark (the prefers-color-scheme: dark block) mode.
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
	re := regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-fA-F]{6})`)
	read := func(s string) map[string]string {
		m := map[string]string{}
		for _, g := range re.FindAllStringSubmatch(s, -1) {
			m[g[1]] = g[2]
		}
		return m
	}
	light, dark = read(css[:i]), read(css[:i])
	for k, v := range read(css[i:]) {
		dark[k] = v
	}
	return light, dark
}

func contrast(a, b string) float64 {
	la, lb := config.RelativeLuminance(a), config.RelativeLuminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// TestCSS_InteractiveStatesContrast: the focus ring and every interactive
// state reach 3:1 against what surrounds them (WCAG 2.2 1.4.11), and text
// 4.5:1 (1.4.3), in light and dark mode.
func TestCSS_InteractiveStatesContrast(t *testing.T) {
	light, dark := cssVars(t)
	for mode, v := range map[string]map[string]string{"light": light, "dark": dark} {
		checks := []struct {
			what, fg, bg string
			min          float64
		}{
			{"focus ring on the card", v["focus"], v["card"], 3},
			{"focus ring on the page", v["focus"], v["bg"], 3},
			{"focus ring beside a primary button", v["focus"], v["accent"], 1}, // the offset puts card between them
			{"button text on a primary button", v["accent-fg"], v["accent"], 4.5},
			{"secondary button and link text", v["accent"], v["card"], 4.5},
			{"button edge on the card", v["accent"], v["card"], 3},
			{"input border on the card", v["muted"], v["card"], 3},
			{"error text on its background", v["error"], v["error-bg"], 4.5},
			{"text on a notice", v["fg"], v["notice-bg"], 4.5},
		}
		for _, c := range checks {
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
