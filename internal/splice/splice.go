// Package splice joins two connections: the agent's dial (a guest port to a
// stream), the API's TCP route (a stream to a WebSocket) and the CLI's
// port-forward (a local socket to a WebSocket) all use it.
package splice

import (
	"io"
	"net"
	"sync"
)

// Conns copies both ways until one direction ends, then closes both: the
// streams it joins have no half-close, so a side that keeps sending after
// the other hung up cannot pin them.
func Conns(a, b net.Conn) {
	var once sync.Once
	closeBoth := func() { a.Close(); b.Close() }
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		once.Do(closeBoth)
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}
