package sshproxy

import (
	"io"
	"sync"
)

// relayBufSize is one SSH packet's worth of payload: x/crypto/ssh and
// OpenSSH both use a 32 KiB maximum packet (RFC 4254 §5.1 leaves it to the
// implementation), so one Read never returns more.
const relayBufSize = 32 << 10

// bufferPool holds relay buffers so that idle channels hold none: a buffer
// is taken only while a copy is under way.
type bufferPool struct{ pool sync.Pool }

// copy copies src to dst until EOF with a pooled buffer. It returns the bytes
// written and the first error other than io.EOF.
func (bp *bufferPool) copy(dst io.Writer, src io.Reader) (int64, error) {
	b, _ := bp.pool.Get().(*[]byte)
	if b == nil {
		buf := make([]byte, relayBufSize)
		b = &buf
	}
	defer bp.pool.Put(b)
	// Hide ReaderFrom/WriterTo so the pooled buffer is the one used.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *b)
}
