// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests for Sluice patch 2, "pooled packet buffers" (docs/xcrypto-fork.md in the Sluice
// repository).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"testing"
)

// TestPooledPacketsKeepTheirData checks the "pooled packet buffers" patch:
// several channels echo distinct data at once in full-size packets, which
// are pooled and recycled on both ends, and every byte must come back as
// sent. A packet recycled while still referenced shows up here as
// corrupted data (and, under -race, as a data race).
func TestPooledPacketsKeepTheirData(t *testing.T) {
	echo := func(ch Channel, in <-chan *Request, t *testing.T) {
		go DiscardRequests(in)
		io.Copy(ch, ch)
		ch.CloseWrite()
		ch.Close()
	}
	client := dial(echo, t)
	defer client.Close()

	const channels, chunks, size = 4, 64, 32 << 10
	var wg sync.WaitGroup
	errs := make(chan error, channels)
	for c := range channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, reqs, err := client.OpenChannel("session", nil)
			if err != nil {
				errs <- err
				return
			}
			go DiscardRequests(reqs)
			chunk := func(i int) []byte {
				b := bytes.Repeat([]byte{byte(c), byte(i)}, size/2)
				binary.BigEndian.PutUint32(b, uint32(c<<16|i))
				return b
			}
			go func() {
				for i := range chunks {
					if _, err := ch.Write(chunk(i)); err != nil {
						return
					}
				}
				ch.CloseWrite()
			}()
			got := make([]byte, size)
			for i := range chunks {
				if _, err := io.ReadFull(ch, got); err != nil {
					errs <- fmt.Errorf("channel %d, chunk %d: %v", c, i, err)
					return
				}
				if !bytes.Equal(got, chunk(i)) {
					errs <- fmt.Errorf("channel %d, chunk %d: data differs from what was sent", c, i)
					return
				}
			}
			ch.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestPacketPoolClasses checks that a packet is never held in a buffer
// more than twice its size, and that full data packets are pooled.
func TestPacketPoolClasses(t *testing.T) {
	smallest := pooledPacketCap(len(packetPools) - 1)
	for _, n := range []int{1, 100, smallest/2 - 1, smallest / 2, smallest, smallest + 1, 16 << 10, pooledPacketCap(1) + 1, 32 << 10, pooledPacketCap(0), pooledPacketCap(0) + 1, maxPacket} {
		p := newPacket(n)
		if len(p) != n {
			t.Fatalf("newPacket(%d) has length %d", n, len(p))
		}
		if cap(p) > 2*n && cap(p) != n {
			t.Errorf("a %d-byte packet is held in %d bytes", n, cap(p))
		}
		recyclePacket(p)
	}
	if p := newPacket(pooledPacketCap(0)); cap(p) != pooledPacketCap(0) {
		t.Errorf("a full data packet was not pooled: capacity %d", cap(p))
	}
	if p := newPacket(16<<10 + 9); cap(p) != pooledPacketCap(1) {
		t.Errorf("a 16 KiB data packet was not pooled: capacity %d", cap(p))
	}
}
