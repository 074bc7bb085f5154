// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests for Sluice patch 5, "no idle write buffer" (docs/xcrypto-fork.md in the Sluice
// repository).

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"testing"
)

// TestPacketWriter checks the "no idle write buffer" patch: a packet
// written in pieces (the stream ciphers' way) reaches the connection in
// one Write, a whole large packet is written through, the packets read
// back as they were sent, and no buffer is held between packets.
func TestPacketWriter(t *testing.T) {
	algs := DirectionAlgorithms{Cipher: "aes128-ctr", MAC: "hmac-sha2-256-etm@openssh.com", compression: compressionNone}
	kr := &kexResult{Hash: crypto.SHA256}
	for _, cipher := range []string{"aes128-ctr", CipherAES128GCM} {
		algs.Cipher = cipher
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
			pw := &packetWriter{w: &out}
			// The stream ciphers encrypt the payload in place.
			if err := w.writeCipherPacket(uint32(seq), pw, rand.Reader, bytes.Clone(payload)); err != nil {
				t.Fatal(err)
			}
			if err := pw.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.writes != 1 {
				t.Errorf("%s: %d-byte payload reached the connection in %d writes, want 1", cipher, n, out.writes)
			}
			if pw.buf != nil {
				t.Errorf("%s: a buffer is held after the packet", cipher)
			}
			got, err := r.readCipherPacket(uint32(seq), &out)
			if err != nil {
				t.Fatalf("%s: %d-byte payload: %v", cipher, n, err)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("%s: %d-byte payload read back differently", cipher, n)
			}
		}
	}
}
