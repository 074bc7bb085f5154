package sshproxy

import (
	"io"
	"sync"
)

// relayBufSize is one SSH packet's worth of payload: x/crypto/ssh and
// OpenSSH both use a 32 KiB maximum packet (RFC 4254 §5.1 leaves it to the
// implementation), so one Read never returns more.
const relayBufSize = 32 << 10

// relayBufs holds the buffers of copies from sources that cannot hand
// over their data themselves; such a copy holds one while it runs.
var relayBufs = sync.Pool{New: func() any {
	b := make([]byte, relayBufSize)
	return &b
}}

// copyStream copies src to dst until EOF and returns the bytes written
// and the first error other than io.EOF. A source that implements
// io.WriterTo (the channels of Sluice's x/crypto fork, docs/xcrypto-fork.md
// "WriteTo without a copy", and this package's wrappers of them) writes
// each received packet's payload to dst as it is, so a relay copies
// nothing itself and holds no buffer while it waits; any other source is
// copied through a pooled buffer.
func copyStream(dst io.Writer, src io.Reader) (int64, error) {
	if wt, ok := src.(io.WriterTo); ok {
		return wt.WriteTo(dst)
	}
	b := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(b)
	// Hide ReaderFrom so that the pooled buffer is the one used.
	return io.CopyBuffer(struct{ io.Writer }{dst}, src, *b)
}
