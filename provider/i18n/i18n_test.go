package i18n_test

import (
	"slices"
	"testing"
	"time"

	"github.com/otpstep/otpstep/provider/i18n"
)

func catalogs(t *testing.T, def string, zone *time.Location) *i18n.Catalogs {
	t.Helper()
	c, err := i18n.New(def, zone)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCatalogs_SameKeys fails when a key is missing in any catalog, or a
// message's placeholders differ between languages.
func TestCatalogs_SameKeys(t *testing.T) {
	c := catalogs(t, "en", nil)
	if got := i18n.Builtin(); !slices.Equal(got, []string{"de", "en"}) {
		t.Fatalf("built-in catalogs %v, want de and en", got)
	}
	en := c.Lookup("en")
	for _, l := range c.Locales() {
		for _, key := range en.Keys() {
			if !l.Has(key) {
				t.Errorf("catalog %s lacks %q", l.Tag(), key)
				continue
			}
			if want, got := i18n.Placeholders(en.T(key)), i18n.Placeholders(l.T(key)); !slices.Equal(want, got) {
				t.Errorf("catalog %s: %q has placeholders %v, en has %v", l.Tag(), key, got, want)
			}
		}
		for _, key := range l.Keys() {
			if !en.Has(key) {
				t.Errorf("catalog en lacks %q (catalog %s has it)", key, l.Tag())
			}
			if l.T(key) == "" {
				t.Errorf("catalog %s: %q is empty", l.Tag(), key)
			}
		}
	}
}

func TestMatch_UILocalesThenAcceptLanguageThenDefault(t *testing.T) {
	c := catalogs(t, "en", nil)
	cases := []struct {
		name, uiLocales, accept, want string
	}{
		{"nothing asked: default", "", "", "en"},
		{"accept-language de", "", "de-DE,de;q=0.9,en;q=0.5", "de"},
		{"ui_locales wins over accept-language", "en", "de", "en"},
		{"ui_locales in order", "fr-CA de en", "", "de"},
		{"ui_locales unspoken: accept-language", "fr ja", "de-AT", "de"},
		{"unspoken everywhere: default", "fr", "ja,zh;q=0.5", "en"},
		{"malformed ui_locales skipped", "@@ de", "", "de"},
		{"malformed accept-language: default", "", ";;;=", "en"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.Match(tc.uiLocales, tc.accept).Tag(); got != tc.want {
				t.Errorf("Match(%q, %q) = %s, want %s", tc.uiLocales, tc.accept, got, tc.want)
			}
		})
	}
	if got := catalogs(t, "de", nil).Match("", "fr").Tag(); got != "de" {
		t.Errorf("default de: got %s", got)
	}
}

func TestNew_UnknownDefaultLocale(t *testing.T) {
	if _, err := i18n.New("fr", nil); err == nil {
		t.Fatal("default locale fr accepted")
	}
	if _, err := i18n.New("no such tag!", nil); err == nil {
		t.Fatal("malformed default locale accepted")
	}
}

func TestT_PlaceholdersAndMissingKeys(t *testing.T) {
	de := catalogs(t, "en", nil).Lookup("de")
	if got, want := de.T("otp.sent_to", "destination", "d***@example.com"), "Wir haben einen Code an d***@example.com gesendet."; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := de.T("no.such.key"); got != i18n.MissingPrefix+"no.such.key" {
		t.Errorf("missing key: got %q", got)
	}
}

func TestClock_ZoneOffsetWrittenOut(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 7, 20, 40, 0, 0, time.UTC)
	cases := []struct {
		zone          *time.Location
		locale, clock string
		datetime      string
	}{
		{nil, "en", "20:40 UTC", "20:40 UTC, 7 Dec 2026"},
		{berlin, "en", "21:40 UTC+01:00", "21:40 UTC+01:00, 7 Dec 2026"},
		{berlin, "de", "21:40 Uhr UTC+01:00", "21:40 Uhr UTC+01:00, 7.12.2026"},
		{time.FixedZone("X", -(3*3600 + 1800)), "en", "17:10 UTC-03:30", "17:10 UTC-03:30, 7 Dec 2026"},
	}
	for _, tc := range cases {
		l := catalogs(t, "en", tc.zone).Lookup(tc.locale)
		if got := l.Clock(at); got != tc.clock {
			t.Errorf("%s Clock = %q, want %q", tc.locale, got, tc.clock)
		}
		if got := l.DateTime(at); got != tc.datetime {
			t.Errorf("%s DateTime = %q, want %q", tc.locale, got, tc.datetime)
		}
	}
}
