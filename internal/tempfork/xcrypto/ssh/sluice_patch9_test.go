// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests for Sluice patch 9, "small packets share a buffer" (docs/xcrypto-fork.md in
// the Sluice repository).

import (
	"bytes"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// elements counts the elements of b's list, the sentinel included.
func (b *buffer) elements() int {
	b.Cond.L.Lock()
	defer b.Cond.L.Unlock()
	n := 1
	for e := b.head; e != b.tail; e = e.next {
		n++
	}
	return n
}

// TestSmallPacketsShareElements writes many one-byte packets into a buffer
// nobody reads: they must share a few elements instead of taking one each,
// and read back in order, whether read by Read or by take.
func TestSmallPacketsShareElements(t *testing.T) {
	for _, reader := range []string{"Read", "take"} {
		t.Run(reader, func(t *testing.T) {
			b := newBuffer()
			const n = 100_000
			want := make([]byte, n)
			for i := range want {
				want[i] = byte(i*7 + i>>8)
				// Each packet as channel.handleData hands it over: the
				// payload sliced from a packet of its own.
				packet := []byte{msgChannelData, 0, 0, 0, 0, 0, 0, 0, 1, want[i]}
				b.writePacket(packet[9:], packet)
			}
			if got, most := b.elements(), 1+n/coalesceCap+1; got > most {
				t.Fatalf("%d one-byte packets take %d elements, want at most %d", n, got, most)
			}
			// A large packet is still queued as it came, without a copy.
			big := bytes.Repeat([]byte{0xAB}, coalesceMax+1)
			b.writePacket(big, nil)
			want = append(want, big...)
			b.eof()
			var got []byte
			switch reader {
			case "Read":
				buf := make([]byte, 777)
				for {
					m, err := b.Read(buf)
					got = append(got, buf[:m]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
			case "take":
				for {
					buf, packet, err := b.take()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					if len(buf) == len(big) && &buf[0] != &big[0] {
						t.Error("a large packet was copied")
					}
					got = append(got, buf...)
					recyclePacket(packet)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, not the %d written in order", len(got), len(want))
			}
		})
	}
}

// TestSmallPacketsInterleaved writes small and large packets while another
// goroutine reads: every byte arrives once and in order (under -race, a
// reader and writer touching one element unlocked shows up here).
func TestSmallPacketsInterleaved(t *testing.T) {
	for _, reader := range []string{"Read", "take"} {
		t.Run(reader, func(t *testing.T) {
			b := newBuffer()
			var want bytes.Buffer
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20_000 {
					size := 1 + i%5
					if i%97 == 0 {
						size = coalesceMax + i%3000
					}
					p := bytes.Repeat([]byte{byte(i)}, size)
					want.Write(p)
					b.writePacket(p, nil)
				}
				b.eof()
			}()
			var got []byte
			if reader == "Read" {
				var err error
				got, err = io.ReadAll(b)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				for {
					buf, _, err := b.take()
					if err == io.EOF {
						break
					}
					got = append(got, buf...)
				}
			}
			wg.Wait()
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("read %d bytes, not the %d written in order", len(got), want.Len())
			}
		})
	}
}

// TestSmallPacketsHeap fills a channel nobody reads with one-byte data
// packets, as a hostile peer may: the window is counted in payload bytes,
// so without the patch each byte held a packet and an element of its own
// (over 100 bytes of heap per byte of window). The heap the unread data
// holds must stay within a small multiple of the data.
func TestSmallPacketsHeap(t *testing.T) {
	client, server, _ := windowPair(t)
	const n = 256 << 10
	heap := func() uint64 {
		// Twice: the first empties the packet pools into their victim
		// caches, the second frees them.
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	one := []byte{'x'}
	for range n {
		if _, err := client.Write(one); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the server side holds all of it, unread.
	s := server.(*channel)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s.pending.Cond.L.Lock()
		held := 0
		for e := s.pending.head; e != nil; e = e.next {
			held += len(e.buf)
		}
		s.pending.Cond.L.Unlock()
		if held == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d of %d bytes sent", held, n)
		}
	}
	grown := int64(heap()) - int64(before)
	t.Logf("%d one-byte packets unread: heap grew %d bytes (%.1f per byte)", n, grown, float64(grown)/n)
	if grown > 4*n {
		t.Errorf("%d unread one-byte packets hold %d bytes of heap, want at most %d", n, grown, 4*n)
	}
	got, err := io.ReadAll(io.LimitReader(server, n))
	if err != nil || len(got) != n || bytes.Count(got, one) != n {
		t.Fatalf("read back %d bytes (err %v), want %d", len(got), err, n)
	}
}
