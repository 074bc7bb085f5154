// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests and benchmarks for Sluice's patches on this copy of x/crypto/ssh
// (docs/xcrypto-fork.md in the Sluice repository).

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"sync"
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

// TestChannelWriteTo checks the "WriteTo without a copy" patch: stdout
// and stderr arrive whole and in order through WriteTo, across many
// windows, while the packets they were read into go back to the pool.
func TestChannelWriteTo(t *testing.T) {
	const size = 5<<20 + 123 // more than two windows, not a whole packet
	data := func(seed byte) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i*7) ^ seed
		}
		return b
	}
	stdout, stderr := data(1), data(2)
	serve := func(ch Channel, in <-chan *Request, t *testing.T) {
		go DiscardRequests(in)
		var wg sync.WaitGroup
		wg.Go(func() { writeInPieces(ch, stdout) })
		wg.Go(func() { writeInPieces(ch.Stderr(), stderr) })
		wg.Wait()
		ch.CloseWrite()
		ch.Close()
	}
	client := dial(serve, t)
	defer client.Close()
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go DiscardRequests(reqs)
	var gotErr bytes.Buffer
	errDone := make(chan error, 1)
	go func() {
		n, err := ch.Stderr().(io.WriterTo).WriteTo(&gotErr)
		if err == nil && n != size {
			err = fmt.Errorf("stderr: WriteTo returned %d bytes, want %d", n, size)
		}
		errDone <- err
	}()
	var gotOut bytes.Buffer
	n, err := ch.(io.WriterTo).WriteTo(&gotOut)
	if err != nil || n != size {
		t.Fatalf("stdout: WriteTo = %d, %v; want %d, nil", n, err, size)
	}
	if err := <-errDone; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotOut.Bytes(), stdout) || !bytes.Equal(gotErr.Bytes(), stderr) {
		t.Fatal("data differs from what was sent")
	}
}

// writeInPieces writes b in pieces of varying size, so that packets of
// every pool class and odd sizes are sent.
func writeInPieces(w io.Writer, b []byte) {
	for i := 0; len(b) > 0; i++ {
		n := min(len(b), []int{32 << 10, 1, 16 << 10, 100, 9000}[i%5])
		if _, err := w.Write(b[:n]); err != nil {
			return
		}
		b = b[n:]
	}
}

// TestChannelWriteToWriterError checks that WriteTo stops at the first
// error of its writer, reports it with the bytes written so far, and
// reports a short write as io.ErrShortWrite.
func TestChannelWriteToWriterError(t *testing.T) {
	serve := func(ch Channel, in <-chan *Request, t *testing.T) {
		go DiscardRequests(in)
		ch.Write(make([]byte, 1000))
		ch.Write(make([]byte, 1000))
		ch.CloseWrite()
	}
	for _, tc := range []struct {
		name string
		w    io.Writer
		n    int64
		err  error
	}{
		{"error", &failingWriter{after: 1, err: io.ErrClosedPipe}, 1000, io.ErrClosedPipe},
		{"short", &failingWriter{after: 0, short: true}, 999, io.ErrShortWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := dial(serve, t)
			defer client.Close()
			ch, reqs, err := client.OpenChannel("session", nil)
			if err != nil {
				t.Fatal(err)
			}
			go DiscardRequests(reqs)
			n, err := ch.(io.WriterTo).WriteTo(tc.w)
			if n != tc.n || err != tc.err {
				t.Fatalf("WriteTo = %d, %v; want %d, %v", n, err, tc.n, tc.err)
			}
		})
	}
}

// failingWriter accepts after whole writes, then fails: with err, or
// with a short count when short is set.
type failingWriter struct {
	after int
	err   error
	short bool
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after > 0 {
		w.after--
		return len(p), nil
	}
	if w.short {
		return len(p) - 1, nil
	}
	return 0, w.err
}

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

// adjustRecorder is a packetConn that keeps the window adjustments a
// channel sends.
type adjustRecorder struct {
	adjusts []uint32
}

func (r *adjustRecorder) writePacket(p []byte) error {
	var msg windowAdjustMsg
	if err := Unmarshal(p, &msg); err != nil {
		return err
	}
	r.adjusts = append(r.adjusts, msg.AdditionalBytes)
	return nil
}

func (r *adjustRecorder) readPacket() ([]byte, error) { return nil, io.EOF }
func (r *adjustRecorder) Close() error                { return nil }

// TestWindowAdjustAtHalfWindow checks the "window adjust at half the
// window" patch: a reader that consumes every packet as it comes sends one
// adjustment per half window, not one per three packets, and the peer
// never has less than half the window, less one packet, to send into.
func TestWindowAdjustAtHalfWindow(t *testing.T) {
	rec := &adjustRecorder{}
	ch := &channel{
		mux:                &mux{conn: rec},
		myWindow:           channelWindowSize,
		maxIncomingPayload: channelMaxPacket,
	}
	const total = 8 << 20
	for range total / channelMaxPacket {
		// What handleData does on a full data packet, then what Read
		// does once the packet is consumed.
		ch.windowMu.Lock()
		ch.myWindow -= channelMaxPacket
		if ch.myWindow < channelWindowSize/2-channelMaxPacket {
			t.Fatalf("peer's window down to %d", ch.myWindow)
		}
		ch.windowMu.Unlock()
		if err := ch.adjustWindow(channelMaxPacket); err != nil {
			t.Fatal(err)
		}
		ch.windowMu.Lock()
		if ch.myWindow+ch.myConsumed != channelWindowSize {
			t.Fatalf("myWindow+myConsumed = %d, want %d", ch.myWindow+ch.myConsumed, channelWindowSize)
		}
		ch.windowMu.Unlock()
	}
	var sum uint32
	for _, a := range rec.adjusts {
		if a <= channelWindowSize/2 {
			t.Errorf("adjustment of %d bytes, want more than half the window (%d)", a, channelWindowSize/2)
		}
		sum += a
	}
	if want := total / (channelWindowSize/2 + channelMaxPacket); len(rec.adjusts) != want {
		t.Errorf("%d adjustments for %d bytes, want %d", len(rec.adjusts), total, want)
	}
	if sum+ch.myConsumed != total {
		t.Errorf("adjusted %d + pending %d bytes, want %d", sum, ch.myConsumed, total)
	}
}

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
