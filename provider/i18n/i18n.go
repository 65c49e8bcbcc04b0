// Package i18n holds otpstep's message catalogs (one JSON file per language
// under catalog/) and picks the language a page or mail is shown in: the
// OIDC ui_locales first, then the browser's Accept-Language, then
// ui.default_locale.
//
// A message is a key of the catalogs (catalog/en.json, catalog/de.json) with
// named placeholders in braces: "Your code was sent to {destination}." To add
// a message, add the key to every catalog file (TestCatalogs_SameKeys fails
// otherwise) and use it: Locale.T("key", "destination", d) in Go, or
// {{t "key" "destination" .Destination}} in a page or mail template.
package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"
)

//go:embed catalog/*.json
var catalogFS embed.FS

// MissingPrefix starts what T returns for a key no catalog has, so a test
// rendering every template finds an untranslated key by looking for it.
const MissingPrefix = "!i18n:"

// placeholder is one "{name}" of a message.
var placeholder = regexp.MustCompile(`\{([a-z_]+)\}`)

// Catalogs are the messages of every language otpstep speaks, and the
// choice of one for a request. Safe for concurrent use.
type Catalogs struct {
	tags    []language.Tag // the default first: the matcher's fallback
	matcher language.Matcher
	locales map[language.Tag]*Locale
}

// Locale is one language's messages, with the time zone times are shown in.
type Locale struct {
	tag  language.Tag
	msgs map[string]string
	zone *time.Location
}

// Builtin lists the languages of the built-in catalogs, by file name.
func Builtin() []string {
	entries, _ := catalogFS.ReadDir("catalog")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

// New loads the built-in catalogs. defaultLocale (ui.default_locale) is the
// language of a request that asks for none otpstep speaks; it must be one of
// Builtin(). zone (ui.time_zone) is the zone times are shown in; nil is UTC.
func New(defaultLocale string, zone *time.Location) (*Catalogs, error) {
	if zone == nil {
		zone = time.UTC
	}
	def, err := language.Parse(defaultLocale)
	if err != nil {
		return nil, fmt.Errorf("i18n: default locale %q: %w", defaultLocale, err)
	}
	c := &Catalogs{locales: map[language.Tag]*Locale{}}
	var others []language.Tag
	found := false
	for _, name := range Builtin() {
		b, err := catalogFS.ReadFile(path.Join("catalog", name+".json"))
		if err != nil {
			return nil, fmt.Errorf("i18n: catalog %s: %w", name, err)
		}
		msgs := map[string]string{}
		if err := json.Unmarshal(b, &msgs); err != nil {
			return nil, fmt.Errorf("i18n: catalog %s: %w", name, err)
		}
		tag := language.Make(name)
		c.locales[tag] = &Locale{tag: tag, msgs: msgs, zone: zone}
		if tag == def {
			found = true
		} else {
			others = append(others, tag)
		}
	}
	if !found {
		return nil, fmt.Errorf("i18n: default locale %q is not one of %s", defaultLocale, strings.Join(Builtin(), ", "))
	}
	c.tags = append([]language.Tag{def}, others...)
	c.matcher = language.NewMatcher(c.tags)
	return c, nil
}

// Default is the locale of ui.default_locale.
func (c *Catalogs) Default() *Locale { return c.locales[c.tags[0]] }

// Locales are every language, the default first.
func (c *Catalogs) Locales() []*Locale {
	out := make([]*Locale, len(c.tags))
	for i, t := range c.tags {
		out[i] = c.locales[t]
	}
	return out
}

// Lookup is the locale of a tag otpstep speaks ("de"), or the default.
func (c *Catalogs) Lookup(tag string) *Locale {
	if l, ok := c.locales[language.Make(tag)]; ok && tag != "" {
		return l
	}
	return c.Default()
}

// Match picks the locale of a request: uiLocales (OIDC Core §3.1.2.1, a
// space-separated list of BCP 47 tags in order of preference) when one of
// them is spoken, else acceptLanguage (RFC 9110 §12.5.4), else the default.
func (c *Catalogs) Match(uiLocales, acceptLanguage string) *Locale {
	if uiLocales != "" {
		var tags []language.Tag
		for _, s := range strings.Fields(uiLocales) {
			if t, err := language.Parse(s); err == nil {
				tags = append(tags, t)
			}
		}
		if l, ok := c.match(tags); ok {
			return l
		}
	}
	if acceptLanguage != "" {
		if tags, _, err := language.ParseAcceptLanguage(acceptLanguage); err == nil {
			if l, ok := c.match(tags); ok {
				return l
			}
		}
	}
	return c.Default()
}

func (c *Catalogs) match(tags []language.Tag) (*Locale, bool) {
	if len(tags) == 0 {
		return nil, false
	}
	_, i, conf := c.matcher.Match(tags...)
	if conf == language.No {
		return nil, false
	}
	return c.locales[c.tags[i]], true
}

// Tag is the locale's BCP 47 tag ("en", "de"), for <html lang>.
func (l *Locale) Tag() string { return l.tag.String() }

// Keys are the locale's message keys, sorted.
func (l *Locale) Keys() []string {
	keys := make([]string, 0, len(l.msgs))
	for k := range l.msgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Has says whether the catalog holds key.
func (l *Locale) Has(key string) bool { _, ok := l.msgs[key]; return ok }

// T is the message key with its placeholders filled from args, given as
// name, value pairs ("destination", "j***@example.com"). A key the catalog
// lacks comes back as MissingPrefix+key; a placeholder without a value
// stays as written.
func (l *Locale) T(key string, args ...any) string {
	msg, ok := l.msgs[key]
	if !ok {
		return MissingPrefix + key
	}
	if len(args) == 0 {
		return msg
	}
	vals := make(map[string]string, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		vals[fmt.Sprint(args[i])] = fmt.Sprint(args[i+1])
	}
	return placeholder.ReplaceAllStringFunc(msg, func(m string) string {
		if v, ok := vals[m[1:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// Placeholders are the names in braces of a message, sorted.
func Placeholders(msg string) []string {
	var names []string
	for _, m := range placeholder.FindAllStringSubmatch(msg, -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Zone is the time zone times are shown in (ui.time_zone).
func (l *Locale) Zone() *time.Location { return l.zone }

// Clock is the time of day of t in the locale's zone, with the offset
// written out: "21:40 UTC" or "21:40 UTC+01:00" ("21:40 Uhr UTC+01:00"
// in German, as the catalog's time.clock says).
func (l *Locale) Clock(t time.Time) string {
	t = t.In(l.zone)
	return l.T("time.clock", "time", t.Format(l.T("time.clock_layout")), "zone", zoneText(t))
}

// DateTime is Clock with the date: "21:40 UTC, 7 Dec 2026".
func (l *Locale) DateTime(t time.Time) string {
	t = t.In(l.zone)
	return l.T("time.datetime", "clock", l.Clock(t), "date", t.Format(l.T("time.date_layout")))
}

// zoneText is "UTC" for a zero offset, else "UTC+01:00" ("UTC-03:30").
func zoneText(t time.Time) string {
	_, off := t.Zone()
	if off == 0 {
		return "UTC"
	}
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	return fmt.Sprintf("UTC%c%02d:%02d", sign, off/3600, off%3600/60)
}
