// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests for Sluice patch 3, "one write per packet" (docs/xcrypto-fork.md in the Sluice
// repository).

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"testing"
)

// countingWriter counts Write calls.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// TestGCMOneWritePerPacket checks the "one write per packet" patch: an
// AES-GCM packet is written with one Write, and upstream's reader still
// reads it.
func TestGCMOneWritePerPacket(t *testing.T) {
	algs := DirectionAlgorithms{Cipher: CipherAES128GCM, compression: compressionNone}
	kr := &kexResult{Hash: crypto.SHA256}
	w, err := newPacketCipher(clientKeys, algs, kr)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newPacketCipher(clientKeys, algs, kr)
	if err != nil {
		t.Fatal(err)
	}
	for seq, n := range []int{1, 4000, 32 << 10} {
		payload := make([]byte, n)
		rand.Read(payload)
		var out countingWriter
		if err := w.writeCipherPacket(uint32(seq), &out, rand.Reader, payload); err != nil {
			t.Fatal(err)
		}
		if out.writes != 1 {
			t.Errorf("%d-byte payload written with %d writes, want 1", n, out.writes)
		}
		got, err := r.readCipherPacket(uint32(seq), &out)
		if err != nil {
			t.Fatalf("%d-byte payload: %v", n, err)
		}
		if !bytes.Equal(got, payload) {
			t.Errorf("%d-byte payload read back differently", n)
		}
	}
}
