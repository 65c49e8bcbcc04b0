package web

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/otpstep/otpstep/web/jsonapi"
	"github.com/otpstep/otpstep/web/openapitest"
)

// docsAPIPath is the project's HTTP contract, relative to this package.
var docsAPIPath = filepath.Join("..", "docs", "api.md")

// docsPrefix is how docs/api.md writes the user-API prefix (api.prefix) in
// its paths; web/openapi.yaml writes the default, openapitest.DefaultPrefix.
const docsPrefix = "{prefix}"

// docRow is one documented answer: an operation and one status it answers.
type docRow struct {
	method, path, status string
}

func (r docRow) String() string { return fmt.Sprintf("%s %s %s", r.method, r.path, r.status) }

// markdown is the row as docs/api.md writes it, with the user-API prefix
// as {prefix}.
func (r docRow) markdown(meaning string) string {
	p := r.path
	if rest, ok := strings.CutPrefix(p, openapitest.DefaultPrefix+"/"); ok {
		p = docsPrefix + "/" + rest
	}
	return fmt.Sprintf("| %s | `%s` | %s | %s |", r.method, p, r.status, meaning)
}

var (
	docMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	// docStatus is a status cell: an HTTP status, or an OpenAPI range
	// (2XX) or default, as openapi.yaml's response keys may be.
	docStatus = regexp.MustCompile(`^([1-5][0-9]{2}|[1-5]XX|default)$`)
)

// cells splits a Markdown table line into its trimmed cells; ok is false for
// a line that is not a table row.
func cells(line string) ([]string, bool) {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil, false
	}
	parts := strings.Split(line[1:len(line)-1], "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, true
}

// parseDocRows reads the operation tables of docs/api.md: every table row
// whose first cell is an HTTP method, `| METHOD | path | status | meaning |`,
// the path optionally in backticks and written with {prefix} for the user
// API. A row that starts with a method but is malformed is an error, so a
// typo cannot drop a row unnoticed; so is a row given twice.
func parseDocRows(md string) (map[docRow]string, []string) {
	rows := map[docRow]string{}
	var problems []string
	for n, line := range strings.Split(md, "\n") {
		c, ok := cells(line)
		if !ok || !slices.Contains(docMethods, c[0]) {
			continue
		}
		where := fmt.Sprintf("docs/api.md:%d", n+1)
		if len(c) != 4 {
			problems = append(problems, fmt.Sprintf("%s: %d cells, want | METHOD | path | status | meaning |: %s", where, len(c), line))
			continue
		}
		path := strings.Trim(c[1], "`")
		if rest, ok := strings.CutPrefix(path, docsPrefix+"/"); ok {
			path = openapitest.DefaultPrefix + "/" + rest
		}
		if !strings.HasPrefix(path, "/") {
			problems = append(problems, fmt.Sprintf("%s: path %q does not start with / or %s/", where, c[1], docsPrefix))
			continue
		}
		if !docStatus.MatchString(c[2]) {
			problems = append(problems, fmt.Sprintf("%s: status %q is not an HTTP status", where, c[2]))
			continue
		}
		if c[3] == "" {
			problems = append(problems, fmt.Sprintf("%s: %s %s %s has no meaning", where, c[0], c[1], c[2]))
		}
		r := docRow{method: c[0], path: path, status: c[2]}
		if _, dup := rows[r]; dup {
			problems = append(problems, fmt.Sprintf("%s: %s is documented twice", where, r))
			continue
		}
		rows[r] = c[3]
	}
	return rows, problems
}

// specRows is every (method, path, status) web/openapi.yaml declares.
func specRows(doc *openapi3.T) map[docRow]bool {
	rows := map[docRow]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				rows[docRow{method: strings.ToUpper(method), path: path, status: status}] = true
			}
		}
	}
	return rows
}

// sortRows orders rows by path, then method, then status, as the tables do.
func sortRows(rows []docRow) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.path != b.path {
			return a.path < b.path
		}
		if a.method != b.method {
			return a.method < b.method
		}
		return a.status < b.status
	})
}

// diffDocRows names, both ways, the rows in which docs/api.md and
// web/openapi.yaml differ, as the lines to add to or remove from
// docs/api.md, so that re-syncing after a contract change is mechanical.
func diffDocRows(documented map[docRow]string, spec map[docRow]bool) []string {
	var missing, extra []docRow
	for r := range spec {
		if _, ok := documented[r]; !ok {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !spec[r] {
			extra = append(extra, r)
		}
	}
	sortRows(missing)
	sortRows(extra)
	var out []string
	if len(missing) > 0 {
		lines := make([]string, len(missing))
		for i, r := range missing {
			lines[i] = r.markdown("…when it answers this…")
		}
		out = append(out, fmt.Sprintf("web/openapi.yaml declares %d answer(s) docs/api.md lacks; add these rows to the operation's table in docs/api.md:\n%s",
			len(missing), strings.Join(lines, "\n")))
	}
	if len(extra) > 0 {
		lines := make([]string, len(extra))
		for i, r := range extra {
			lines[i] = r.markdown(documented[r])
		}
		out = append(out, fmt.Sprintf("docs/api.md documents %d answer(s) web/openapi.yaml does not declare; remove these rows from docs/api.md (or declare the responses in web/openapi.yaml):\n%s",
			len(extra), strings.Join(lines, "\n")))
	}
	return out
}

func readDocsAPI(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docsAPIPath)
	if err != nil {
		t.Fatalf("the project's HTTP contract: %v", err)
	}
	return string(b)
}

// TestDocs_APIRowsAreOpenAPIResponses keeps docs/api.md equal to
// web/openapi.yaml: the set of (method, path, status) of docs/api.md's
// operation tables is the set of responses the spec declares.
func TestDocs_APIRowsAreOpenAPIResponses(t *testing.T) {
	documented, problems := parseDocRows(readDocsAPI(t))
	for _, p := range problems {
		t.Error(p)
	}
	if len(documented) == 0 {
		t.Fatal("docs/api.md has no | METHOD | path | status | meaning | rows")
	}
	for _, d := range diffDocRows(documented, specRows(openapitest.Load(t).Doc())) {
		t.Error(d)
	}
}

// TestDocs_APIDiffNamesEachRowBothWays proves the check above can fail, and
// says how: a row dropped from docs/api.md is named as one to add, a row
// the spec lacks as one to remove, each as the exact table line.
func TestDocs_APIDiffNamesEachRowBothWays(t *testing.T) {
	md := readDocsAPI(t)
	const dropped = "| PUT | `{prefix}/sessions/{sessionId}` | 204 |"
	i := strings.Index(md, dropped)
	if i < 0 {
		t.Fatalf("docs/api.md lacks the row starting %q", dropped)
	}
	end := strings.IndexByte(md[i:], '\n')
	mutated := md[:i] + "| GET | `/nowhere` | 418 | invented |" + md[i+end:]

	documented, problems := parseDocRows(mutated)
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	diff := strings.Join(diffDocRows(documented, specRows(openapitest.Load(t).Doc())), "\n")
	for _, want := range []string{
		"1 answer(s) docs/api.md lacks",
		"| PUT | `{prefix}/sessions/{sessionId}` | 204 | …when it answers this… |",
		"1 answer(s) web/openapi.yaml does not declare",
		"| GET | `/nowhere` | 418 | invented |",
	} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}
}

func TestDocs_APIRowParserRefusesMalformedRows(t *testing.T) {
	md := strings.Join([]string{
		"| METHOD | path | status | meaning |",
		"|---|---|---|---|",
		"| GET | `/health/alive` | 200 | alive |",
		"| GET | `/health/alive` | 200 | again |",
		"| GET | `/health/alive` | 2O0 | a typo |",
		"| GET | health/ready | 200 | no slash |",
		"| GET | `/metrics` | 200 |",
		"| POST | `{prefix}/user/otp` | 201 | created |",
	}, "\n")
	rows, problems := parseDocRows(md)
	want := map[docRow]string{
		{"GET", "/health/alive", "200"}:                          "alive",
		{"POST", openapitest.DefaultPrefix + "/user/otp", "201"}: "created",
	}
	if len(rows) != len(want) {
		t.Errorf("rows = %v, want %v", rows, want)
	}
	for r, m := range want {
		if rows[r] != m {
			t.Errorf("row %s = %q, want %q", r, rows[r], m)
		}
	}
	for _, p := range []string{"documented twice", `status "2O0"`, `path "health/ready"`, "3 cells"} {
		if !slices.ContainsFunc(problems, func(s string) bool { return strings.Contains(s, p) }) {
			t.Errorf("no problem mentions %q: %v", p, problems)
		}
	}
}

// TestDocs_APIErrorCodesAreTheEnum keeps docs/api.md's table of JSON:API
// error codes (the section "## Error codes") equal to the ErrorCode enum
// of web/openapi.yaml and to the codes package jsonapi writes.
func TestDocs_APIErrorCodesAreTheEnum(t *testing.T) {
	md := readDocsAPI(t)
	start := strings.Index(md, "\n## Error codes")
	if start < 0 {
		t.Fatal(`docs/api.md has no "## Error codes" section`)
	}
	section := md[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	code := regexp.MustCompile("^`([a-z-]+)`$")
	var documented []string
	for _, line := range strings.Split(section, "\n") {
		c, ok := cells(line)
		if !ok || len(c) < 3 || !docStatus.MatchString(c[0]) {
			continue
		}
		m := code.FindStringSubmatch(c[1])
		if m == nil {
			t.Errorf("error-code row %q: code cell %q is not a `code`", line, c[1])
			continue
		}
		if !slices.Contains(documented, m[1]) {
			documented = append(documented, m[1])
		}
	}
	ref := openapitest.Load(t).Doc().Components.Schemas["ErrorCode"]
	if ref == nil || ref.Value == nil {
		t.Fatal("components.schemas.ErrorCode missing")
	}
	var enum []string
	for _, v := range ref.Value.Enum {
		enum = append(enum, fmt.Sprint(v))
	}
	sort.Strings(documented)
	sort.Strings(enum)
	if !slices.Equal(documented, enum) {
		t.Errorf("docs/api.md's error codes %v, web/openapi.yaml's ErrorCode enum %v", documented, enum)
	}
	for _, c := range []string{
		jsonapi.CodeBadRequest, jsonapi.CodeUnauthorized, jsonapi.CodeMissingLinkedIdentity,
		jsonapi.CodeInsufficientScope, jsonapi.CodeNotFound, jsonapi.CodeNotAcceptable,
		jsonapi.CodeUnsupportedMediaType, jsonapi.CodeValidationFailed, jsonapi.CodeIdentityAlreadyLinked,
		jsonapi.CodeTooManyRequests, jsonapi.CodeInternalError, jsonapi.CodeUnavailable,
		jsonapi.CodeInvalidCredentials, jsonapi.CodePINNotSecure,
	} {
		if !slices.Contains(documented, c) {
			t.Errorf("jsonapi writes code %q, which docs/api.md does not document", c)
		}
	}
}
