package config

import (
	"slices"
	"strings"
	"testing"
)

// Every section of the file has its validator (a new section, e.g.
// tracing, adds one to Config.sections), so a scope can select it and no
// section goes unvalidated.
func TestEverySectionHasAValidator(t *testing.T) {
	var c Config
	for _, key := range Keys() {
		section, _, _ := strings.Cut(key, ".")
		if !slices.ContainsFunc(c.sections(), func(s sectionValidator) bool { return s.name == section }) {
			t.Errorf("section %s has no validator in Config.sections", section)
		}
	}
}
