package config

import (
	"math"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // ui.time_zone resolves on hosts without a zoneinfo database
)

// Locales are the languages otpstep's catalogs speak (provider/i18n's
// catalog files; a test holds them equal).
var Locales = []string{"de", "en"}

// MinPrimaryContrast is the least contrast ui.primary_color must have with
// white: the button text on it and the links in it (WCAG 2.2 1.4.3, normal
// text).
const MinPrimaryContrast = 4.5

var hexColor = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

func (u UI) validate(v *validation) {
	if strings.TrimSpace(u.ProductName) == "" {
		v.bad("ui.product_name", "must not be empty")
	} else if len(u.ProductName) > 64 || strings.ContainsAny(u.ProductName, "\r\n") {
		v.bad("ui.product_name", "%q must be one line of at most 64 bytes (it is in mail subjects)", u.ProductName)
	}
	if u.LogoURL != "" && !pageURL(u.LogoURL) {
		v.bad("ui.logo_url", "%q is neither a path (/static/…) nor an https URL", u.LogoURL)
	}
	if u.SupportURL != "" && !absoluteURL(u.SupportURL) {
		v.bad("ui.support_url", "%q is not an absolute http(s) or mailto URL", u.SupportURL)
	}
	if u.PrimaryColor != "" {
		if !hexColor.MatchString(u.PrimaryColor) {
			v.bad("ui.primary_color", "%q is not a colour written #rrggbb", u.PrimaryColor)
		} else if c := ContrastWithWhite(u.PrimaryColor); c < MinPrimaryContrast {
			v.bad("ui.primary_color", "%s has a contrast of %.2f:1 with white; white text on it and it as link text need at least %.1f:1",
				u.PrimaryColor, c, MinPrimaryContrast)
		}
	}
	if u.TemplatesDir != "" {
		if info, err := os.Stat(u.TemplatesDir); err != nil || !info.IsDir() {
			v.bad("ui.templates_dir", "%q is not a directory", u.TemplatesDir)
		}
	}
	if !slices.Contains(Locales, u.DefaultLocale) {
		v.bad("ui.default_locale", "%q is not one of %s", u.DefaultLocale, strings.Join(Locales, ", "))
	}
	if _, err := time.LoadLocation(u.TimeZone); err != nil || u.TimeZone == "" || strings.EqualFold(u.TimeZone, "Local") {
		v.bad("ui.time_zone", "%q is not an IANA time zone (UTC, Europe/Berlin)", u.TimeZone)
	}
	for scope, text := range u.ScopeDescriptions {
		if scope == "" || strings.TrimSpace(text) == "" {
			v.bad("ui.scope_descriptions", "scope %q needs a description", scope)
		}
	}
}

// pageURL is a path on this server or an https URL.
func pageURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Scheme == "" && u.Host == "" {
		return strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//")
	}
	return u.Scheme == "https" && u.Host != ""
}

// absoluteURL is an http(s) URL with a host, or a mailto: address.
func absoluteURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Scheme == "mailto" {
		return strings.Contains(u.Opaque, "@")
	}
	return (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// ContrastWithWhite is the WCAG 2.2 contrast ratio of a #rrggbb colour
// with white, (1.05) / (L + 0.05) with L its relative luminance.
func ContrastWithWhite(hex string) float64 {
	return 1.05 / (RelativeLuminance(hex) + 0.05)
}

// RelativeLuminance is WCAG 2.2's relative luminance of a #rrggbb colour.
func RelativeLuminance(hex string) float64 {
	var l float64
	for i, weight := range []float64{0.2126, 0.7152, 0.0722} {
		n, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		c := float64(n) / 255
		if c <= 0.04045 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += weight * c
	}
	return l
}
