package storage

import (
	"encoding/json"
	"reflect"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// decodeSession decodes a stored session (the JSON createRequest wrote) into
// session, exactly as json.Unmarshal does. Every token read does this, so
// the common case has a fast path without reflection: an empty
// *openid.DefaultSession (what fosite hands in) and the compact, escape-free
// JSON encoding/json writes for one. Anything else — another session type, a
// session already filled, escapes, non-ASCII, whitespace, unknown or repeated
// keys, a null where a string is expected, ext values other than strings,
// booleans and null — goes to json.Unmarshal. The fast path changes nothing
// before it has parsed the whole input, and FuzzDecodeSession holds it to
// json.Unmarshal's result.
func decodeSession(data []byte, session fosite.Session) error {
	if s, ok := session.(*openid.DefaultSession); ok && isEmptyDefaultSession(s) && decodeDefaultSession(data, s) {
		return nil
	}
	return json.Unmarshal(data, session)
}

// isEmptyDefaultSession reports whether s is as openid.NewDefaultSession
// makes it: Claims and Headers allocated and zero, no expiry, no names. Into
// such a session json.Unmarshal's "decode into the existing value" comes to
// the same as decoding into fresh values, which is what the fast path does.
func isEmptyDefaultSession(s *openid.DefaultSession) bool {
	return s != nil && s.Claims != nil && reflect.ValueOf(s.Claims).Elem().IsZero() &&
		s.Headers != nil && s.Headers.Extra == nil &&
		len(s.ExpiresAt) == 0 && s.Username == "" && s.Subject == ""
}

// decodeDefaultSession is decodeSession's fast path. It reports false,
// leaving s untouched, for any input it does not handle.
func decodeDefaultSession(data []byte, s *openid.DefaultSession) bool {
	var (
		d                     = sessionDecoder{b: data}
		claims                jwt.IDTokenClaims
		headers               jwt.Headers
		expires               map[fosite.TokenType]time.Time
		username, subject     string
		claimsNull, hdrNull   bool
		expiresNull           bool
		hasClaims, hasHeaders bool
		hasExpires            bool
		seen                  keySet
	)
	ok := d.object(func(key []byte) bool {
		if !seen.add(key) {
			return false
		}
		switch string(key) {
		case "id_token_claims":
			hasClaims = true
			if claimsNull = d.null(); claimsNull {
				return true
			}
			return d.claims(&claims)
		case "headers":
			hasHeaders = true
			if hdrNull = d.null(); hdrNull {
				return true
			}
			var seenExtra bool
			return d.object(func(key []byte) bool {
				if string(key) != "extra" || seenExtra {
					return false
				}
				seenExtra = true
				var ok bool
				headers.Extra, ok = d.extra()
				return ok
			})
		case "expires_at":
			hasExpires = true
			if expiresNull = d.null(); expiresNull {
				return true
			}
			expires = map[fosite.TokenType]time.Time{}
			return d.object(func(key []byte) bool {
				var t time.Time
				if !d.time(&t) {
					return false
				}
				expires[fosite.TokenType(key)] = t // a repeated key: the last wins, as in json
				return true
			})
		case "username":
			var ok bool
			username, ok = d.str()
			return ok
		case "subject":
			var ok bool
			subject, ok = d.str()
			return ok
		}
		return false
	})
	if !ok || !d.end() {
		return false
	}

	// Apply what was parsed, as json.Unmarshal would have.
	if hasClaims {
		if claimsNull {
			s.Claims = nil
		} else {
			*s.Claims = claims
		}
	}
	if hasHeaders {
		if hdrNull {
			s.Headers = nil
		} else {
			*s.Headers = headers
		}
	}
	if hasExpires {
		switch {
		case expiresNull:
			s.ExpiresAt = nil
		case s.ExpiresAt == nil:
			s.ExpiresAt = expires
		default: // an empty map: json.Unmarshal adds to it
			for k, v := range expires {
				s.ExpiresAt[k] = v
			}
		}
	}
	s.Username, s.Subject = username, subject
	return true
}

// keySet detects a key seen twice in one object (json.Unmarshal would merge
// or overwrite; the fast path leaves those cases to it). It holds the 14
// keys of the largest object, the claims, and gives up beyond 16.
type keySet struct {
	keys [16][]byte
	n    int
}

func (k *keySet) add(key []byte) bool {
	for _, s := range k.keys[:k.n] {
		if string(s) == string(key) {
			return false
		}
	}
	if k.n == len(k.keys) {
		return false
	}
	k.keys[k.n] = key
	k.n++
	return true
}

// sessionDecoder reads the subset of JSON the fast path handles. Every
// method reports false on anything else.
type sessionDecoder struct {
	b   []byte
	pos int
}

func (d *sessionDecoder) end() bool { return d.pos == len(d.b) }

func (d *sessionDecoder) consume(c byte) bool {
	if d.pos < len(d.b) && d.b[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

func (d *sessionDecoder) literal(lit string) bool {
	if len(d.b)-d.pos >= len(lit) && string(d.b[d.pos:d.pos+len(lit)]) == lit {
		d.pos += len(lit)
		return true
	}
	return false
}

func (d *sessionDecoder) null() bool { return d.literal("null") }

// raw returns a string token with its quotes: printable ASCII, no escapes.
func (d *sessionDecoder) raw() ([]byte, bool) {
	start := d.pos
	if !d.consume('"') {
		return nil, false
	}
	for d.pos < len(d.b) {
		c := d.b[d.pos]
		d.pos++
		switch {
		case c == '"':
			return d.b[start:d.pos], true
		case c == '\\', c < 0x20, c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

func (d *sessionDecoder) str() (string, bool) {
	b, ok := d.bytes()
	return string(b), ok
}

// bytes is str without the copy: a slice of the input.
func (d *sessionDecoder) bytes() ([]byte, bool) {
	r, ok := d.raw()
	if !ok {
		return nil, false
	}
	return r[1 : len(r)-1], true
}

// object reads {"key":value,...}; member reads each value.
func (d *sessionDecoder) object(member func(key []byte) bool) bool {
	if !d.consume('{') {
		return false
	}
	if d.consume('}') {
		return true
	}
	for {
		key, ok := d.bytes()
		if !ok || !d.consume(':') || !member(key) {
			return false
		}
		if d.consume('}') {
			return true
		}
		if !d.consume(',') {
			return false
		}
	}
}

// time reads a time.Time as json.Unmarshal does: null leaves t as it is.
func (d *sessionDecoder) time(t *time.Time) bool {
	if d.null() {
		return true
	}
	r, ok := d.raw()
	return ok && t.UnmarshalJSON(r) == nil
}

// strings reads a []string: null is nil, [] is empty and not nil.
func (d *sessionDecoder) strings() ([]string, bool) {
	if d.null() {
		return nil, true
	}
	if !d.consume('[') {
		return nil, false
	}
	list := []string{}
	if d.consume(']') {
		return list, true
	}
	for {
		s, ok := d.str()
		if !ok {
			return nil, false
		}
		list = append(list, s)
		if d.consume(']') {
			return list, true
		}
		if !d.consume(',') {
			return nil, false
		}
	}
}

// extra reads a map[string]interface{} whose values are strings, booleans
// or null; null is a nil map.
func (d *sessionDecoder) extra() (map[string]interface{}, bool) {
	if d.null() {
		return nil, true
	}
	m := map[string]interface{}{}
	ok := d.object(func(b []byte) bool {
		key := string(b)
		switch {
		case d.null():
			m[key] = nil
		case d.literal("true"):
			m[key] = true
		case d.literal("false"):
			m[key] = false
		default:
			s, ok := d.str()
			if !ok {
				return false
			}
			m[key] = s
		}
		return true // a repeated key: the last wins, as in json
	})
	return m, ok
}

// claims reads jwt.IDTokenClaims into the zero c.
func (d *sessionDecoder) claims(c *jwt.IDTokenClaims) bool {
	var seen keySet
	return d.object(func(key []byte) bool {
		if !seen.add(key) {
			return false
		}
		var ok bool
		switch string(key) {
		case "jti":
			c.JTI, ok = d.str()
		case "iss":
			c.Issuer, ok = d.str()
		case "sub":
			c.Subject, ok = d.str()
		case "aud":
			c.Audience, ok = d.strings()
		case "nonce":
			c.Nonce, ok = d.str()
		case "exp":
			ok = d.time(&c.ExpiresAt)
		case "iat":
			ok = d.time(&c.IssuedAt)
		case "rat":
			ok = d.time(&c.RequestedAt)
		case "auth_time":
			ok = d.time(&c.AuthTime)
		case "at_hash":
			c.AccessTokenHash, ok = d.str()
		case "acr":
			c.AuthenticationContextClassReference, ok = d.str()
		case "amr":
			c.AuthenticationMethodsReferences, ok = d.strings()
		case "c_hash":
			c.CodeHash, ok = d.str()
		case "ext":
			c.Extra, ok = d.extra()
		}
		return ok
	})
}
