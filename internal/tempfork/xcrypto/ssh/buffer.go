// Copyright 2012 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

import (
	"io"
	"sync"
)

// buffer provides a linked list buffer for data exchange
// between producer and consumer. Theoretically the buffer is
// of unlimited capacity as it does no allocation of its own.
type buffer struct {
	// protects concurrent access to head, tail and closed
	*sync.Cond

	head *element // the buffer that will be read first
	tail *element // the buffer that will be read last

	closed bool
}

// An element represents a single link in a linked list.
type element struct {
	buf  []byte
	next *element
	// packet is the whole SSH packet buf was sliced from, handed to
	// recyclePacket once buf is consumed. Sluice patch (docs/xcrypto-fork.md,
	// "pooled packet buffers").
	packet []byte
	// shared says that buf was made by writePacket to hold small packets
	// one after another, so that later ones may be appended to it. Sluice
	// patch (docs/xcrypto-fork.md, "small packets share a buffer").
	shared bool
}

// Small packets are copied into a shared buffer at the tail of the list
// instead of each taking an element and a packet of its own: the peer's
// window is counted in payload bytes, and a packet of one byte held over
// 100 bytes of heap, so a peer filling a channel nobody reads with tiny
// packets made it hold a hundred times its window. coalesceMax is the
// largest payload so copied and coalesceCap the most a shared buffer
// holds; it grows by append, so that a reader that keeps up (a keystroke
// at a time) costs no more than before, and unread data about twice its
// size. Sluice patch (docs/xcrypto-fork.md, "small packets share a
// buffer").
const (
	coalesceMax = 512
	coalesceCap = 4096
)

// newBuffer returns an empty buffer that is not closed.
func newBuffer() *buffer {
	e := new(element)
	b := &buffer{
		Cond: newCond(),
		head: e,
		tail: e,
	}
	return b
}

// write makes buf available for Read to receive.
// buf must not be modified after the call to write.
func (b *buffer) write(buf []byte) {
	b.writePacket(buf, nil)
}

// writePacket is write for buf, a slice of packet. Neither may be used by
// the caller after the call: once buf is read, packet goes back to the
// packet pool.
func (b *buffer) writePacket(buf, packet []byte) {
	b.Cond.L.Lock()
	if len(buf) <= coalesceMax {
		t := b.tail
		if !t.shared || len(t.buf)+len(buf) > coalesceCap {
			t = &element{shared: true}
			b.tail.next = t
			b.tail = t
		}
		t.buf = append(t.buf, buf...)
		recyclePacket(packet)
	} else {
		e := &element{buf: buf, packet: packet}
		b.tail.next = e
		b.tail = e
	}
	b.Cond.Signal()
	b.Cond.L.Unlock()
}

// eof closes the buffer. Reads from the buffer once all
// the data has been consumed will receive io.EOF.
func (b *buffer) eof() {
	b.Cond.L.Lock()
	b.closed = true
	b.Cond.Signal()
	b.Cond.L.Unlock()
}

// Read reads data from the internal buffer in buf.  Reads will block
// if no data is available, or until the buffer is closed.
func (b *buffer) Read(buf []byte) (n int, err error) {
	b.Cond.L.Lock()
	defer b.Cond.L.Unlock()

	for len(buf) > 0 {
		// if there is data in b.head, copy it
		if len(b.head.buf) > 0 {
			r := copy(buf, b.head.buf)
			buf, b.head.buf = buf[r:], b.head.buf[r:]
			n += r
			continue
		}
		// if there is a next buffer, make it the head
		if len(b.head.buf) == 0 && b.head != b.tail {
			recyclePacket(b.head.packet)
			b.head.packet = nil
			b.head = b.head.next
			continue
		}

		// if at least one byte has been copied, return
		if n > 0 {
			break
		}

		// if nothing was read, and there is nothing outstanding
		// check to see if the buffer is closed.
		if b.closed {
			err = io.EOF
			break
		}
		// out of buffers, wait for producer
		b.Cond.Wait()
	}
	return
}

// take waits until data is buffered, or the buffer is closed and empty,
// and removes the first run of data from the buffer. The caller owns buf
// and, once done with buf, hands packet to recyclePacket. Sluice patch
// (docs/xcrypto-fork.md, "WriteTo without a copy").
func (b *buffer) take() (buf, packet []byte, err error) {
	b.Cond.L.Lock()
	defer b.Cond.L.Unlock()
	for {
		if len(b.head.buf) > 0 {
			buf, packet = b.head.buf, b.head.packet
			b.head.buf, b.head.packet = nil, nil
			return buf, packet, nil
		}
		if b.head != b.tail {
			recyclePacket(b.head.packet)
			b.head.packet = nil
			b.head = b.head.next
			continue
		}
		if b.closed {
			return nil, nil, io.EOF
		}
		b.Cond.Wait()
	}
}
