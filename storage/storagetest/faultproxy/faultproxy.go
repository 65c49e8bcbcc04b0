// Package faultproxy is a TCP proxy on loopback for tests, put between a
// connection pool and its database, that fails on demand: it passes
// traffic, refuses new connections and resets open ones (Down), or holds
// every byte in both directions without closing anything (Stall), as a
// frozen or partitioned server does.
package faultproxy

import (
	"net"
	"sync"
	"testing"
)

type mode int

const (
	pass mode = iota
	down
	stall
)

// Proxy forwards connections from its own loopback address to a target.
type Proxy struct {
	t      testing.TB
	target string
	addr   string

	mu     sync.Mutex
	cond   *sync.Cond
	mode   mode
	ln     net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on 127.0.0.1 and forwards to target (host:port) until the
// test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: listen: %v", err)
	}
	p := &Proxy{t: t, target: target, addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.serve(ln)
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// Pass forwards again: new connections are accepted and stalled ones resume.
func (p *Proxy) Pass() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == down {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.t.Errorf("faultproxy: listen again on %s: %v", p.addr, err)
			return
		}
		p.ln = ln
		p.serve(ln)
	}
	p.mode = pass
	p.cond.Broadcast()
}

// Down refuses new connections (the listener closes: connection refused)
// and resets every open one.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == down {
		return
	}
	p.mode = down
	_ = p.ln.Close()
	p.resetAllLocked()
	p.cond.Broadcast()
}

// Stall keeps every connection open and accepts new ones, but forwards
// nothing in either direction until Pass.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == down {
		p.mu.Unlock()
		p.Pass()
		p.mu.Lock()
	}
	p.mode = stall
}

func (p *Proxy) resetAllLocked() {
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with RST
		}
		_ = c.Close()
	}
}

func (p *Proxy) serve(ln net.Listener) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.handle(c)
			}()
		}
	}()
}

// track adds c to the open connections; false when the proxy is down or
// closed (c is then reset).
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == down {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) handle(client net.Conn) {
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	// A stalled proxy does not even dial: a new connection hangs in its
	// startup, as against a frozen server.
	if !p.waitPass() {
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	done := make(chan struct{}, 2)
	go func() { p.copy(server, client); done <- struct{}{} }()
	go func() { p.copy(client, server); done <- struct{}{} }()
	<-done
	// One side ended: end both, so the other copy returns.
	_ = client.Close()
	_ = server.Close()
	<-done
}

// waitPass blocks while the proxy stalls; false when it went down or closed.
func (p *Proxy) waitPass() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.mode == stall && !p.closed {
		p.cond.Wait()
	}
	return p.mode == pass && !p.closed
}

// copy forwards src to dst, holding each chunk while the proxy stalls.
func (p *Proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitPass() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or the connection closed
			return
		}
	}
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	_ = p.ln.Close()
	p.resetAllLocked()
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
