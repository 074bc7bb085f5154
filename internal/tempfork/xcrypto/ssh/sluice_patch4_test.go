// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests for Sluice patch 4, "WriteTo without a copy" (docs/xcrypto-fork.md in the Sluice
// repository).

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"
)

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
