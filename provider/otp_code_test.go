package provider

import (
	"crypto/rand"
	"math"
	"testing"
)

type cryptoRand struct{}

func (cryptoRand) Read(p []byte) (int, error) { return rand.Read(p) }

// Every digit in every position is equally likely: a chi-square test per
// position over 10,000 draws (9 degrees of freedom). The bound 45 is the
// p = 1e-6 critical value, so a fair generator fails about once in 170,000
// runs. It catches gross defects (a stuck or missing digit); the absence of
// modulo bias follows from crypto/rand.Int's rejection sampling, which a
// test of this size could not resolve (byte%10 shifts digits by 1/256).
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
