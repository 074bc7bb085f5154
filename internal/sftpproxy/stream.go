package sftpproxy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// readBufSize is the read-ahead of a packetReader: two of OpenSSH's
// 32 KiB data packets (sftp's default -B) with their headers, so that
// packets already received are parsed in place and the writer is flushed
// only when no complete packet is left.
const readBufSize = 64 << 10

// chunkSize is the size of the writes a batcher makes: one SSH channel
// packet, OpenSSH's CHAN_SES_PACKET_DEFAULT (channels.h) and x/crypto/ssh's
// channelMaxPacket, both 32 KiB. An SFTP data packet is 32 KiB plus its
// header; written alone it costs two SSH packets (and two write(2)s), one
// of them a few bytes long.
const chunkSize = 32 << 10

// packetReader reads SFTP packets from a stream through a read-ahead
// buffer. A packet that fits the buffer is returned in place, valid until
// the next call; a larger one is copied into big.
type packetReader struct {
	br  *bufio.Reader
	big []byte
	// used is the length of the packet last returned in place, discarded
	// at the next call.
	used int
}

// next reads one packet, length field included. A clean EOF before a
// packet starts is io.EOF.
func (pr *packetReader) next() ([]byte, error) {
	if pr.used > 0 {
		_, _ = pr.br.Discard(pr.used)
		pr.used = 0
	}
	hdr, err := pr.br.Peek(4)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	switch {
	case n > maxPacket:
		return nil, fmt.Errorf("%w: %d bytes, maximum %d", ErrTooLarge, n, maxPacket)
	case n == 0:
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	total := 4 + int(n)
	var pkt []byte
	if total <= pr.br.Size() {
		pkt, err = pr.br.Peek(total)
		pr.used = len(pkt)
	} else {
		if cap(pr.big) < total {
			pr.big = make([]byte, total)
		}
		pkt = pr.big[:total]
		_, err = io.ReadFull(pr.br, pkt)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("sftpproxy: reading packet: %w", err)
	}
	return pkt, nil
}

// flushFirst flushes a batcher before each Read of the stream under it:
// a packetReader reads its stream only when it holds no complete packet,
// which is when the relay may block, so nothing it has forwarded waits in
// a batcher while it does.
type flushFirst struct {
	r     io.Reader
	flush func() error
}

func (f flushFirst) Read(p []byte) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.r.Read(p)
}

// batcher collects packets for one peer and writes them in chunkSize
// pieces, keeping the rest until more comes or flush.
type batcher struct {
	w   io.Writer
	buf []byte
	// n counts the bytes written to w.
	n int64
}

func (b *batcher) write(pkt []byte) error {
	b.buf = append(b.buf, pkt...)
	off := 0
	for len(b.buf)-off >= chunkSize {
		if err := b.send(b.buf[off : off+chunkSize]); err != nil {
			return err
		}
		off += chunkSize
	}
	if off > 0 {
		b.buf = b.buf[:copy(b.buf, b.buf[off:])]
	}
	return nil
}

func (b *batcher) flush() error {
	if len(b.buf) == 0 {
		return nil
	}
	err := b.send(b.buf)
	b.buf = b.buf[:0]
	return err
}

func (b *batcher) send(p []byte) error {
	n, err := b.w.Write(p)
	b.n += int64(n)
	return err
}

// buffers is what one direction of a session borrows from the Proxy's
// pool: the read-ahead of one peer and the batch for the other.
type buffers struct {
	br  *bufio.Reader
	out []byte
}

// bufferPool holds buffers between sessions, so that a closed session's
// memory serves the next one.
type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) get(r io.Reader) *buffers {
	b, ok := p.pool.Get().(*buffers)
	if !ok {
		return &buffers{br: bufio.NewReaderSize(r, readBufSize), out: make([]byte, 0, 2*chunkSize)}
	}
	b.br.Reset(r)
	return b
}

func (p *bufferPool) put(b *buffers) {
	b.br.Reset(nil)
	b.out = b.out[:0]
	p.pool.Put(b)
}
