package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ory/fosite"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeList_RoundTripsWhatEncodeListWrites(t *testing.T) {
	for _, list := range [][]string{
		{"openid"},
		{"openid", "offline_access", "user:sessions:update"},
		{"https://rp.example/cb?a=1&b=2", "http://127.0.0.1:8080/cb"},
		{"", "a,b", "]", "["},
		{`quote"inside`, `back\slash`, "tab\there", "ünïcödé", "<script>"},
	} {
		t.Run(fmt.Sprint(list), func(t *testing.T) {
			got, err := decodeList(encodeList(list))
			require.NoError(t, err)
			assert.Equal(t, list, got)
		})
	}
	got, err := decodeList("[]")
	require.NoError(t, err)
	assert.Nil(t, got)
	got, err = decodeList(`[ "spaced" , "json" ]`)
	require.NoError(t, err)
	assert.Equal(t, []string{"spaced", "json"}, got)
	_, err = decodeList(`["unterminated`)
	assert.Error(t, err)
}

// TestDecodeList_AgreesWithJSONUnmarshal: list columns had their own fast
// parser beside the session decoder's, and it took a raw control character
// inside a string, which JSON (and json.Unmarshal) refuses. The one parser
// of both answers as json.Unmarshal does.
func TestDecodeList_AgreesWithJSONUnmarshal(t *testing.T) {
	for _, v := range []string{
		`["a"]`, `["a","b"]`, "[\"tab\there\"]", "[\"new\nline\"]", `["\u00fc"]`, `["ü"]`,
		`["a",]`, `[,"a"]`, `["a""b"]`, `["a"]x`, `null`, `["a",1]`, `[""]`,
	} {
		var want []string
		wantErr := json.Unmarshal([]byte(v), &want)
		if len(want) == 0 {
			want = nil
		}
		got, err := decodeList(v)
		if (err != nil) != (wantErr != nil) || err == nil && !slices.Equal(got, want) {
			t.Errorf("decodeList(%q) = %q, %v; json.Unmarshal: %q, %v", v, got, err, want, wantErr)
		}
	}
}

func TestTimeColumns_SQLiteLayoutSortsAsTime(t *testing.T) {
	s := &Store{dialect: DialectSQLite}
	a := time.Date(2024, 5, 6, 7, 8, 59, 999_999_000, time.UTC)
	b := a.Add(time.Microsecond) // 07:09:00.000000
	c := time.Date(2024, 5, 6, 9, 10, 0, 0, time.FixedZone("CEST", 2*3600))
	sa, sb, sc := s.timeArg(a).(string), s.timeArg(b).(string), s.timeArg(c).(string)
	assert.Less(t, sa, sb)
	assert.Less(t, sb, sc)
	assert.Equal(t, "2024-05-06T07:10:00.000000Z", sc, "stored in UTC")

	var got time.Time
	require.NoError(t, timeCol{&got}.Scan(sb))
	assert.Equal(t, b, got)
}

func TestClassify_PostgresConcurrencyErrorsAreSerializationFailures(t *testing.T) {
	for code, want := range map[string]error{
		"40001": fosite.ErrSerializationFailure,
		"40P01": fosite.ErrSerializationFailure,
		"23505": ErrAlreadyExists,
		"23503": ErrNotFound,
	} {
		err := classify(fmt.Errorf("exec: %w", &pgconn.PgError{Code: code}))
		assert.ErrorIs(t, err, want, code)
		var pgErr *pgconn.PgError
		assert.True(t, errors.As(err, &pgErr), "the driver error stays in the chain")
	}
	assert.ErrorIs(t, classify(fmt.Errorf("x: %w", &pgconn.PgError{Code: "23503"})), fosite.ErrNotFound)
}

func TestClassify_ConnectionFailuresAreUnavailable(t *testing.T) {
	for name, err := range map[string]error{
		"refused":        &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED},
		"reset":          fmt.Errorf("read: %w", syscall.ECONNRESET),
		"broken pipe":    fmt.Errorf("write: %w", syscall.EPIPE),
		"eof":            fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF),
		"bad conn":       driver.ErrBadConn,
		"conn done":      sql.ErrConnDone,
		"closed pool":    errors.New("sql: database is closed"),
		"admin shutdown": &pgconn.PgError{Code: "57P01"},
		"no database":    &pgconn.PgError{Code: "3D000"},
		"class 08":       &pgconn.PgError{Code: "08006"},
		"disk full":      &pgconn.PgError{Code: "53100"},
		"deadline":       fmt.Errorf("acquire: %w", context.DeadlineExceeded),
	} {
		got := classify(fmt.Errorf("query: %w", err))
		assert.ErrorIs(t, got, ErrUnavailable, name)
		assert.ErrorIs(t, got, err, "%s: the driver error stays in the chain", name)
		assert.NotErrorIs(t, got, ErrNotFound, name)
	}
	for name, err := range map[string]error{
		"unique":    &pgconn.PgError{Code: "23505"},
		"syntax":    &pgconn.PgError{Code: "42601"},
		"no rows":   sql.ErrNoRows,
		"cancelled": fmt.Errorf("%w: %w", context.Canceled, io.ErrUnexpectedEOF),
		"other":     errors.New("boom"),
	} {
		assert.NotErrorIs(t, classify(err), ErrUnavailable, name)
	}
}
