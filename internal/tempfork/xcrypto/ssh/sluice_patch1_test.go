// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests for Sluice patch 1, "chacha20 keystream" (docs/xcrypto-fork.md in the Sluice
// repository).

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"testing"

	"golang.org/x/crypto/chacha20"
)

// TestChaCha20KeystreamMatchesGeneric checks the "chacha20 keystream"
// patch: the AEAD's keystream must be the one the chacha20 package gives
// from block 1 on, for every length around the block and SIMD boundaries.
func TestChaCha20KeystreamMatchesGeneric(t *testing.T) {
	key := make([]byte, 64)
	rand.Read(key)
	pc, err := newChaCha20Cipher(key, nil, nil, DirectionAlgorithms{})
	if err != nil {
		t.Fatal(err)
	}
	c := pc.(*chacha20Poly1305Cipher)
	lengths := []int{0, 1, 15, 16, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000, 4096, 32768 + 300, maxPacket}
	for _, n := range lengths {
		for _, seq := range []uint32{0, 1, 0xffffffff} {
			nonce := make([]byte, 12)
			binary.BigEndian.PutUint32(nonce[8:], seq)
			plain := make([]byte, n)
			rand.Read(plain)

			want := make([]byte, n)
			s, err := chacha20.NewUnauthenticatedCipher(c.contentKey[:], nonce)
			if err != nil {
				t.Fatal(err)
			}
			s.SetCounter(1)
			s.XORKeyStream(want, plain)

			got := make([]byte, n, n+16)
			copy(got, plain)
			c.xorContent(nonce, got)
			if !bytes.Equal(got, want) {
				t.Fatalf("length %d, seq %d: keystream differs from the chacha20 package's", n, seq)
			}
		}
	}
}

// TestChaCha20PacketMatchesGeneric decrypts packets written by the patched
// cipher with the chacha20 package alone, as a peer such as OpenSSH does.
func TestChaCha20PacketMatchesGeneric(t *testing.T) {
	key := make([]byte, 64)
	rand.Read(key)
	w, err := newChaCha20Cipher(key, nil, nil, DirectionAlgorithms{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 100, 32768} {
		payload := make([]byte, n)
		rand.Read(payload)
		var buf bytes.Buffer
		const seq = 7
		if err := w.writeCipherPacket(seq, &buf, rand.Reader, payload); err != nil {
			t.Fatal(err)
		}
		pkt := buf.Bytes()
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint32(nonce[8:], seq)
		s, _ := chacha20.NewUnauthenticatedCipher(key[:32], nonce)
		s.SetCounter(1)
		plain := make([]byte, len(pkt)-4-16)
		s.XORKeyStream(plain, pkt[4:len(pkt)-16])
		pad := int(plain[0])
		if got := plain[1 : len(plain)-pad]; !bytes.Equal(got, payload) {
			t.Fatalf("payload of %d bytes: the chacha20 package decrypts something else", n)
		}
	}
}

// BenchmarkPacketCipher writes and reads one 32 KiB packet, the size of a
// full SSH channel data packet, with the ciphers Sluice negotiates.
func BenchmarkPacketCipher(b *testing.B) {
	for _, cipher := range []string{CipherAES128GCM, CipherChaCha20Poly1305} {
		b.Run(cipher, func(b *testing.B) {
			algs := DirectionAlgorithms{Cipher: cipher, MAC: HMACSHA256, compression: compressionNone}
			kr := &kexResult{Hash: crypto.SHA256}
			w, err := newPacketCipher(clientKeys, algs, kr)
			if err != nil {
				b.Fatal(err)
			}
			r, err := newPacketCipher(clientKeys, algs, kr)
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 32<<10)
			var buf bytes.Buffer
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			seq := uint32(0)
			for b.Loop() {
				buf.Reset()
				if err := w.writeCipherPacket(seq, &buf, rand.Reader, payload); err != nil {
					b.Fatal(err)
				}
				if _, err := r.readCipherPacket(seq, &buf); err != nil {
					b.Fatal(err)
				}
				seq++
			}
		})
	}
}
