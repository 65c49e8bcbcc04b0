package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts every environment variable otpstep reads.
const EnvPrefix = "OTPSTEP_"

// Load reads defaults, then the YAML file at path (skipped when path is ""),
// then the environment through lookupEnv (os.LookupEnv when nil). It does not
// validate (see Config.Validate). Every key it cannot read — unknown in the
// file, or of the wrong type in the file or the environment — is reported at
// once, each a *KeyError naming the key.
func Load(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	return LoadOnto(Default(), path, lookupEnv)
}

// LoadOnto is Load starting from defaults instead of Default() (for
// example DevDefault()): what the file and environment leave unset keeps
// its value in defaults.
func LoadOnto(defaults Config, path string, lookupEnv func(string) (string, bool)) (Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	cfg := defaults
	k := koanf.New(".")
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	for _, key := range Keys() {
		if v, ok := lookupEnv(EnvVar(key)); ok && !FileOnly(key) {
			if err := k.Set(key, v); err != nil {
				return cfg, &KeyError{Key: key, Reason: err.Error()}
			}
		}
	}
	err := unmarshal(k, &cfg, path)
	// api.prefix alone (the form before api.prefixes) replaces the
	// default list; both set is refused by Validate.
	if cfg.API.Prefix != "" && !k.Exists("api.prefixes") {
		cfg.API.Prefixes = nil
	}
	return cfg, err
}

// unmarshal decodes what k holds onto cfg in one pass (koanf's unmarshal,
// typed by the decode hooks) and reports every key it could not read.
func unmarshal(k *koanf.Koanf, cfg *Config, path string) error {
	var md mapstructure.Metadata
	err := k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(durationHook, stringListHook, stringMapHook, boolHook, intHook, scalarToStringHook),
		Metadata:   &md,
		// A key is spelt as the file documents it.
		MatchName: func(key, field string) bool { return key == field },
		// A list replaces the default's, item by item included.
		ZeroFields: true,
	}})
	var errs []*KeyError
	for _, key := range md.Unused {
		errs = append(errs, &KeyError{Key: key, Reason: "unknown key in " + path})
	}
	var other []error
	for _, e := range leafErrors(err) {
		if de, ok := e.(*mapstructure.DecodeError); ok {
			errs = append(errs, &KeyError{Key: de.Name(), Reason: de.Unwrap().Error()})
		} else {
			other = append(other, e)
		}
	}
	return errors.Join(append(other, joinKeyErrors(errs))...)
}

// leafErrors flattens the tree mapstructure returns (a wrapped
// errors.Join) into its *mapstructure.DecodeError and other leaves.
func leafErrors(err error) []error {
	switch e := err.(type) { //nolint:errorlint // walking the tree itself
	case nil:
		return nil
	case *mapstructure.DecodeError:
		return []error{e}
	case interface{ Unwrap() []error }:
		var out []error
		for _, e := range e.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		if inner := leafErrors(e.Unwrap()); slices.ContainsFunc(inner, isDecodeError) {
			return inner
		}
	}
	return []error{err}
}

func isDecodeError(err error) bool {
	_, ok := err.(*mapstructure.DecodeError) //nolint:errorlint // a leaf of leafErrors
	return ok
}

var durationType = reflect.TypeOf(time.Duration(0))

// durationHook reads a duration as Go writes it (30s, 5m, 1h30m); a bare
// number other than 0 has no unit and is refused.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	s := fmt.Sprint(data)
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a duration like 30s or 5m", s)
	}
	return d, nil
}

// stringListHook reads a list from the environment: comma-separated, each
// item trimmed, empty items dropped.
func stringListHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeOf([]string(nil)) {
		return data, nil
	}
	var out []string
	for _, p := range strings.Split(data.(string), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// stringMapHook reads a map of strings from the environment as a JSON
// object: OTPSTEP_UI_SCOPE_DESCRIPTIONS='{"shop:orders":"See your orders"}'.
func stringMapHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeOf(map[string]string(nil)) {
		return data, nil
	}
	out := map[string]string{}
	if strings.TrimSpace(data.(string)) == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(data.(string)), &out); err != nil {
		return nil, fmt.Errorf("not a JSON object of strings: %w", err)
	}
	return out, nil
}

// boolHook reads true/false, 1/0, yes/no and on/off from the environment.
func boolHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Bool {
		return data, nil
	}
	switch strings.ToLower(strings.TrimSpace(data.(string))) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return nil, fmt.Errorf("%q is not true or false", data)
}

// intHook reads a whole number, from the environment's text or the file's
// number (refusing 7.5 rather than rounding it).
func intHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Int {
		return data, nil
	}
	switch v := data.(type) {
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", v)
		}
		return n, nil
	case float64:
		if v != float64(int(v)) {
			return nil, fmt.Errorf("%v is not a whole number", v)
		}
		return int(v), nil
	}
	return data, nil
}

// scalarToStringHook keeps what YAML reads as a number or a bool as text
// where a string is wanted (listen: 4444, a secret of digits).
func scalarToStringHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.String {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint64, reflect.Float64:
		return fmt.Sprint(data), nil
	}
	return data, nil
}

// Keys lists every leaf key of Config in the order Config declares them,
// which is the order config.example.yaml documents them (server.listen,
// server.public_url, …, upstreams).
func Keys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := prefix + f.Tag.Get("koanf")
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, name+".")
				continue
			}
			out = append(out, name)
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return out
}

// position is where key sits in the order of Keys: the field's index at
// each level, with the item's index after a list (upstreams[1].name). A
// name Config does not have sorts after the keys of its section.
func position(key string) []int {
	t := reflect.TypeOf(Config{})
	var pos []int
	for _, part := range strings.Split(key, ".") {
		if t.Kind() != reflect.Struct {
			break
		}
		name, item, isItem := strings.Cut(part, "[")
		i := fieldIndex(t, name)
		if i < 0 {
			return append(pos, t.NumField())
		}
		pos, t = append(pos, i), t.Field(i).Type
		if isItem && t.Kind() == reflect.Slice {
			n, _ := strconv.Atoi(strings.TrimSuffix(item, "]"))
			pos, t = append(pos, n), t.Elem()
		}
	}
	return pos
}

func fieldIndex(t reflect.Type, name string) int {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("koanf") == name {
			return i
		}
	}
	return -1
}

// fieldType is the type of key's field; ok is false for a key Config lacks.
func fieldType(key string) (reflect.Type, bool) {
	t := reflect.TypeOf(Config{})
	for _, p := range strings.Split(key, ".") {
		if t.Kind() != reflect.Struct {
			return nil, false
		}
		i := fieldIndex(t, p)
		if i < 0 {
			return nil, false
		}
		t = t.Field(i).Type
	}
	return t, true
}

// FileOnly reports whether key is a list of mappings (upstreams), which only
// the YAML file sets.
func FileOnly(key string) bool {
	t, ok := fieldType(key)
	return ok && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct
}

// hasEnvVar reports whether key is one the environment sets.
func hasEnvVar(key string) bool {
	t, ok := fieldType(key)
	return ok && (t.Kind() != reflect.Struct || t == durationType) && !FileOnly(key)
}

// EnvVar is the environment variable that sets key.
func EnvVar(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
