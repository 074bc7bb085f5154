// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests for Sluice patch 6, "window adjust per quarter window"
// (docs/xcrypto-fork.md in the Sluice repository). They use only the
// package's exported API and count what crosses the connection.

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeCounter is a net.Conn that counts its Write calls.
type writeCounter struct {
	net.Conn
	writes atomic.Int64
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// windowPair connects a client and a server over loopback TCP, opens a
// channel from the client and returns both ends of it; the server's
// writes on the connection are counted by sc.
func windowPair(t *testing.T) (client, server Channel, sc *writeCounter) {
	t.Helper()
	c1, c2, err := netPipe()
	if err != nil {
		t.Fatal(err)
	}
	sc = &writeCounter{Conn: c2}
	serverConf := &ServerConfig{NoClientAuth: true}
	serverConf.AddHostKey(testSigners["ed25519"])
	accepted := make(chan Channel, 1)
	go func() {
		defer close(accepted)
		conn, chans, reqs, err := NewServerConn(sc, serverConf)
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { conn.Close() })
		go DiscardRequests(reqs)
		nc, ok := <-chans
		if !ok {
			return
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		go DiscardRequests(creqs)
		accepted <- ch
	}()
	conn, chans, reqs, err := NewClientConn(c1, "server", &ClientConfig{User: "u", HostKeyCallback: InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			nc.Reject(Prohibited, "")
		}
	}()
	client, creqs, err := conn.OpenChannel("sluice-window-test", nil)
	if err != nil {
		t.Fatal(err)
	}
	go DiscardRequests(creqs)
	server, ok := <-accepted
	if !ok {
		t.FailNow()
	}
	return client, server, sc
}

// sentUntilBlocked writes into client until Write blocks for a while
// (generous: the machine may be loaded) and returns how much it wrote.
func sentUntilBlocked(t *testing.T, client Channel) int64 {
	t.Helper()
	var sent atomic.Int64
	go func() {
		buf := make([]byte, channelMaxPacket)
		for {
			n, err := client.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	last := int64(-1)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		n := sent.Load()
		if n == last && n > 0 {
			return n
		}
		last = n
	}
	t.Fatalf("writer never blocked: %d bytes sent", sent.Load())
	return 0
}

// TestChannelWindowSize checks that a channel grants upstream's window,
// channelWindowSize, and no more: a peer can send exactly that much into a
// channel nobody reads, and then waits, also after the reader has
// consumed several adjustments' worth.
func TestChannelWindowSize(t *testing.T) {
	for _, read := range []int64{0, 3*channelWindowAdjust + 1000} {
		client, server, _ := windowPair(t)
		done := make(chan error, 1)
		go func() {
			_, err := io.CopyN(io.Discard, server, read)
			done <- err
		}()
		sent := sentUntilBlocked(t, client)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// Credit for less than channelWindowAdjust is held back.
		want := read + channelWindowSize - read%channelWindowAdjust
		if sent != want {
			t.Errorf("after reading %d bytes, the peer sent %d, want %d", read, sent, want)
		}
		server.Close()
	}
}

// TestChannelWindowAdjustPerQuarter checks that a reader keeping up with a
// bulk stream returns window credit about once per channelWindowAdjust
// bytes (upstream: once per three 32 KiB packets), and that every byte
// arrives.
func TestChannelWindowAdjustPerQuarter(t *testing.T) {
	client, server, sc := windowPair(t)
	const total = 16 << 20
	before := sc.writes.Load()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, channelMaxPacket)
		for sent := 0; sent < total; sent += len(buf) {
			if _, err := client.Write(buf); err != nil {
				t.Error(err)
				return
			}
		}
		client.CloseWrite()
	}()
	n, err := io.Copy(io.Discard, server)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n != total {
		t.Fatalf("received %d bytes, want %d", n, total)
	}
	// The server wrote nothing but window adjustments while it read .
	adjusts := sc.writes.Load() - before
	if want := int64(total / channelWindowAdjust); adjusts < want-1 || adjusts > want+1 {
		t.Errorf("%d window adjustments for %d bytes, want %d (one per %d bytes)", adjusts, total, want, channelWindowAdjust)
	}
}
