package provider

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"
)

type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) { return rand.Read(p) }

// Every digit in every position is equally likely: a chi-square test per
// position over 10,000 draws (9 degrees of freedom). The bound 45 is the
// p = 1e-6 critical value, so a fair generator fails about once in 170,000
// runs. It catches gross defects (a stuck or missing digit); the absence of
// modulo bias follows from the rejection sampling, which a test of this
// size could not resolve (byte%10 shifts digits by 1/256);
// TestNewOTPCode_RejectsTheBiasedTop checks the rejection itself.
func TestNewOTPCode_Uniform(t *testing.T) {
	const draws = 10000
	var counts [6][10]float64
	for i := 0; i < draws; i++ {
		c, err := newOTPCode(cryptoRand{}, 6)
		if err != nil {
			t.Fatal(err)
		}
		for pos, r := range c {
			counts[pos][r-'0']++
		}
	}
	for pos := range counts {
		chi := 0.0
		for _, n := range counts[pos] {
			chi += math.Pow(n-draws/10.0, 2) / (draws / 10.0)
		}
		if chi > 45 {
			t.Errorf("position %d: chi-square %.1f > 45 (counts %v)", pos, chi, counts[pos])
		}
	}
}

// draws is a random source that yields the given 64-bit draws, little endian.
func draws(v ...uint64) *bytes.Reader {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return bytes.NewReader(b)
}

// 2^64 = 18446744073709551616 leaves 551616 over the last whole multiple of
// 10^6: the draws from 2^64-551616 up would make codes 000000–551615 more
// likely than the others, so they are drawn again.
func TestNewOTPCode_RejectsTheBiasedTop(t *testing.T) {
	const top = math.MaxUint64 - 551616 // the last draw kept for 6 digits
	tests := []struct {
		name  string
		n     int
		draws []uint64
		want  string
	}{
		{"the draw modulo 10^n", 6, []uint64{123456}, "123456"},
		{"zero-padded", 6, []uint64{42}, "000042"},
		{"ten digits", 10, []uint64{9_876_543_210_123}, "6543210123"},
		{"the last kept draw", 6, []uint64{top}, "999999"},
		{"past it: drawn again", 6, []uint64{top + 1, 7}, "000007"},
		{"the very top: drawn again", 6, []uint64{math.MaxUint64, math.MaxUint64, 1_000_001}, "000001"},
	}
	for _, tt := range tests {
		got, err := newOTPCode(draws(tt.draws...), tt.n)
		if err != nil || got != tt.want {
			t.Errorf("%s: newOTPCode = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := newOTPCode(draws(top+1), 6); !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		t.Errorf("a source that runs out: err = %v", err)
	}
}
