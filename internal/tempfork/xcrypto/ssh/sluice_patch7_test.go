// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests for Sluice patch 7, "no idle read buffer" (docs/xcrypto-fork.md in the Sluice
// repository).

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"testing"
)

// chunkReader returns its chunks one Read at a time (a chunk larger than
// the Read's buffer over several), as a socket returns what has arrived,
// and records the size of each Read's buffer.
type chunkReader struct {
	chunks [][]byte
	asked  []int
}

func (c *chunkReader) Read(b []byte) (int, error) {
	c.asked = append(c.asked, len(b))
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// TestPacketReaderBuffers checks the "no idle read buffer" patch's choice
// of buffer: a small read after a read that drained the connection, a
// pooled buffer after one that filled its buffer, the caller's slice for
// large requests, and no pooled buffer held once the input is consumed.
func TestPacketReaderBuffers(t *testing.T) {
	in := make([]byte, 300+5000+10+20)
	rand.Read(in)
	cr := &chunkReader{chunks: [][]byte{in[:300], in[300:5300], in[5300:5310], in[5310:]}}
	p := &packetReader{r: cr}
	var got []byte
	read := func(n int) {
		t.Helper()
		b := make([]byte, n)
		if _, err := io.ReadFull(p, b); err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	read(10)   // the connection was idle: a small read, 256 of the first 300 bytes
	read(246)  // the rest of those 256
	read(44)   // the small read was full: a pooled read, the last 44 of the chunk
	read(5000) // a large request: straight into the caller's slice, which it fills
	read(10)   // that read was full: pooled
	read(20)   // that one was short: small
	if p.pool != nil {
		t.Error("a pooled buffer is held with nothing buffered")
	}
	if !bytes.Equal(got, in) {
		t.Error("bytes read back differently")
	}
	want := []int{smallRead, readBufSize, 5000, readBufSize, smallRead}
	if fmt.Sprint(cr.asked) != fmt.Sprint(want) {
		t.Errorf("reads asked for %v bytes, want %v", cr.asked, want)
	}
	if n, err := p.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("at the end: %d, %v; want 0, EOF", n, err)
	}
}

// TestPacketReaderPackets reads packets of every size through a
// packetReader, delivered a packet at a time, in random pieces, and all
// at once, with a block cipher read in pieces and an AEAD.
func TestPacketReaderPackets(t *testing.T) {
	kr := &kexResult{Hash: crypto.SHA256}
	sizes := []int{1, 9, 40, 255, 300, 4000, 4096, 9000, 32 << 10}
	for _, cipher := range []string{"aes128-ctr", CipherAES128GCM, CipherChaCha20Poly1305} {
		algs := DirectionAlgorithms{Cipher: cipher, MAC: "hmac-sha2-256-etm@openssh.com", compression: compressionNone}
		w, err := newPacketCipher(clientKeys, algs, kr)
		if err != nil {
			t.Fatal(err)
		}
		var wire []byte
		var packets, ends [][]byte
		for seq, n := range sizes {
			payload := make([]byte, n)
			rand.Read(payload)
			var out bytes.Buffer
			if err := w.writeCipherPacket(uint32(seq), &out, rand.Reader, bytes.Clone(payload)); err != nil {
				t.Fatal(err)
			}
			packets = append(packets, payload)
			ends = append(ends, out.Bytes())
			wire = append(wire, out.Bytes()...)
		}
		var random [][]byte
		for rest := wire; len(rest) > 0; {
			n := min(len(rest), 1+mrand.IntN(9000))
			random, rest = append(random, rest[:n]), rest[n:]
		}
		for name, chunks := range map[string][][]byte{"per packet": ends, "random": random, "at once": {wire}} {
			r, err := newPacketCipher(clientKeys, algs, kr)
			if err != nil {
				t.Fatal(err)
			}
			p := &packetReader{r: &chunkReader{chunks: slices.Clone(chunks)}}
			for seq, want := range packets {
				got, err := r.readCipherPacket(uint32(seq), p)
				if err != nil {
					t.Fatalf("%s, %s: packet %d: %v", cipher, name, seq, err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s, %s: packet %d (%d bytes) read back differently", cipher, name, seq, len(want))
				}
			}
			if p.pool != nil || len(p.buf) != 0 {
				t.Errorf("%s, %s: %d bytes and a pooled buffer (%v) held after the last packet", cipher, name, len(p.buf), p.pool != nil)
			}
		}
	}
}
