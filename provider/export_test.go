package provider

import "sync/atomic"

// CountPasswordChecks makes p count the passwords it compares with a stored
// hash from now on, and returns the count so far. Call it before the
// requests it counts.
func CountPasswordChecks(p *Provider) func() int64 {
	var n atomic.Int64
	next := p.comparePassword
	p.comparePassword = func(password, hash string) (bool, error) {
		n.Add(1)
		return next(password, hash)
	}
	return n.Load
}
