package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts every environment variable otpstep reads.
const EnvPrefix = "OTPSTEP_"

// Load reads defaults, then the YAML file at path (skipped when path is ""),
// then the environment through lookupEnv (os.LookupEnv when nil), and
// validates the result. Unknown keys in the file are an error naming the key.
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
		known := map[string]bool{}
		for _, key := range Keys() {
			known[key] = true
		}
		for _, key := range k.Keys() {
			if !known[key] {
				return cfg, fmt.Errorf("config file %s: unknown key %q", path, key)
			}
		}
	}
	env := map[string]any{}
	for _, key := range Keys() {
		if FileOnly(key) {
			continue
		}
		if v, ok := lookupEnv(EnvVar(key)); ok {
			env[key] = v
		}
	}
	if len(env) > 0 {
		if err := k.Load(mapProvider(env), nil); err != nil {
			return cfg, err
		}
	}
	if err := unmarshal(k, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// unmarshal decodes key by key so a type error names its key.
func unmarshal(k *koanf.Koanf, cfg *Config) error {
	for _, key := range k.Keys() {
		field, ok := fieldByKey(reflect.ValueOf(cfg).Elem(), key)
		if !ok {
			continue
		}
		if err := setField(field, k.Get(key)); err != nil {
			return fmt.Errorf("%s (%s): %w", key, EnvVar(key), err)
		}
	}
	return nil
}

func setField(field reflect.Value, raw any) error {
	if field.Kind() == reflect.Slice && field.Type().Elem().Kind() == reflect.Struct {
		items, ok := raw.([]any)
		if !ok {
			return fmt.Errorf("want a list")
		}
		out := reflect.MakeSlice(field.Type(), len(items), len(items))
		for i, item := range items {
			m, ok := item.(map[string]any)
			if !ok {
				return fmt.Errorf("item %d: want a mapping", i)
			}
			for k, v := range m {
				f, ok := fieldByKey(out.Index(i), k)
				if !ok {
					return fmt.Errorf("item %d: unknown key %q", i, k)
				}
				if err := setField(f, v); err != nil {
					return fmt.Errorf("item %d: %s: %w", i, k, err)
				}
			}
		}
		field.Set(out)
		return nil
	}
	switch field.Interface().(type) {
	case time.Duration:
		s := fmt.Sprint(raw)
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 30s or 5m", s)
		}
		field.SetInt(int64(d))
		return nil
	case []string:
		switch v := raw.(type) {
		case []any:
			out := make([]string, 0, len(v))
			for _, e := range v {
				out = append(out, fmt.Sprint(e))
			}
			field.Set(reflect.ValueOf(out))
		case string:
			var out []string
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
			field.Set(reflect.ValueOf(out))
		default:
			return fmt.Errorf("want a list of strings")
		}
		return nil
	}
	switch field.Kind() {
	case reflect.String:
		field.SetString(fmt.Sprint(raw))
	case reflect.Bool:
		switch v := raw.(type) {
		case bool:
			field.SetBool(v)
		case string:
			switch strings.ToLower(v) {
			case "true", "1", "yes", "on":
				field.SetBool(true)
			case "false", "0", "no", "off":
				field.SetBool(false)
			default:
				return fmt.Errorf("%q is not true or false", v)
			}
		default:
			return fmt.Errorf("want true or false")
		}
	case reflect.Int:
		var n int
		switch v := raw.(type) {
		case int:
			n = v
		case int64:
			n = int(v)
		case float64:
			if v != float64(int(v)) {
				return fmt.Errorf("want a whole number")
			}
			n = int(v)
		case string:
			if _, err := fmt.Sscanf(v, "%d", &n); err != nil || fmt.Sprint(n) != strings.TrimSpace(v) {
				return fmt.Errorf("%q is not a whole number", v)
			}
		default:
			return fmt.Errorf("want a whole number")
		}
		field.SetInt(int64(n))
	default:
		return fmt.Errorf("unsupported type %s", field.Type())
	}
	return nil
}

func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	parts := strings.Split(key, ".")
	for _, p := range parts {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		found := false
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Tag.Get("koanf") == p {
				v = v.Field(i)
				found = true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
	}
	return v, true
}

// Keys lists every leaf key of Config, sorted (server.listen, otp.ttl, …).
func Keys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := prefix + f.Tag.Get("koanf")
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
				walk(f.Type, name+".")
				continue
			}
			out = append(out, name)
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	sort.Strings(out)
	return out
}

// FileOnly reports whether key is a list of mappings (upstreams), which only
// the YAML file sets.
func FileOnly(key string) bool {
	f, ok := fieldByKey(reflect.ValueOf(&Config{}).Elem(), key)
	return ok && f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct
}

// EnvVar is the environment variable that sets key.
func EnvVar(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

type mapProvider map[string]any

func (m mapProvider) ReadBytes() ([]byte, error) { return nil, errors.New("not supported") }
func (m mapProvider) Read() (map[string]any, error) {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return unflatten(out), nil
}

func unflatten(flat map[string]any) map[string]any {
	out := map[string]any{}
	for key, v := range flat {
		parts := strings.Split(key, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = v
	}
	return out
}
