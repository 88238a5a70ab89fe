package s3test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a loopback TCP proxy in front of the S3 server that a test
// controls: it can cut a connection in the middle of a response, the way
// a network failure would.
type Proxy struct {
	// URL is the proxy's address as an endpoint (http://127.0.0.1:PORT).
	URL    string
	ln     net.Listener
	target string

	cutAfter atomic.Int64 // > 0: cut the first connection that has sent more response bytes
	cuts     atomic.Int64
	received atomic.Int64 // response bytes passed on, headers included
	maxSent  atomic.Int64 // > 0: cut every connection that sends more request bytes
	wg       sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port) that is closed when the
// test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

// CutAfter arms the proxy: the next connection over which the server has
// sent more than n bytes is closed at once, in both directions. It fires
// once; arm it again for another cut.
func (p *Proxy) CutAfter(n int64) { p.cutAfter.Store(n) }

// FailRequestsOver makes the proxy cut, from now on, every connection over
// which the client has sent more than n bytes (n <= 0 turns it off): large
// uploads (UploadPart, PutObject) then always fail while small requests
// (CreateMultipartUpload, AbortMultipartUpload, GET) go through.
func (p *Proxy) FailRequestsOver(n int64) { p.maxSent.Store(n) }

// Received returns how many response bytes (HTTP headers included) the
// proxy has passed on to its clients.
func (p *Proxy) Received() int64 { return p.received.Load() }

// Cuts returns how many connections the proxy has cut.
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	go func() {
		buf := make([]byte, 32<<10)
		var sent int64
		for {
			n, err := c.Read(buf)
			if n > 0 {
				sent += int64(n)
				if lim := p.maxSent.Load(); lim > 0 && sent > lim {
					p.cuts.Add(1)
					c.Close()
					u.Close()
					return
				}
				if _, err := u.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				u.(*net.TCPConn).CloseWrite()
				return
			}
		}
	}()
	defer c.Close()
	defer u.Close()
	buf := make([]byte, 32<<10)
	var sent int64
	for {
		n, err := u.Read(buf)
		if n > 0 {
			if lim := p.cutAfter.Load(); lim > 0 && sent+int64(n) > lim && p.cutAfter.CompareAndSwap(lim, 0) {
				c.Write(buf[:lim-sent])
				p.received.Add(lim - sent)
				p.cuts.Add(1)
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) // a reset, as a failing network gives
				}
				return
			}
			sent += int64(n)
			p.received.Add(int64(n))
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
