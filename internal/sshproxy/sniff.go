package sshproxy

import (
	"bytes"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sniff"
)

// sniffWait bounds how long a forward's first bytes are held back while
// the gateway waits to learn what the stream carries: a client that has
// said too little by then is decided as what it said so far. A server
// that speaks first (SSH, SMTP, MySQL) decides at once.
const sniffWait = 3 * time.Second

// chunk is one Read's worth of a direction, handed to the sniffer.
type chunk struct {
	b   []byte
	err error
}

// sniffer holds a forward's first bytes in both directions until decide
// says whether the stream may go on. decide is called once with what the
// first bytes say, and once more if the target's first bytes turn out to
// be an SSH banner after a decision made on the client's bytes alone; it
// audits its verdict.
type sniffer struct {
	wait   time.Duration
	decide func(sniff.Result) bool

	// decided is closed once the verdict is in accept and result; each
	// half then relays on its own.
	decided chan struct{}
	accept  bool
	result  sniff.Result
	// sawClient and sawTarget are set when the client's or the target's
	// first bytes were part of the decision.
	sawClient, sawTarget bool
}

// pipe relays client and target like Proxy.pipe, but holds the first
// bytes of each direction until the stream is decided: a refused stream
// is closed before any client byte reaches the target. Once decided each
// direction is the same bulk copy as Proxy.pipe. It returns the decision's
// result, whether it accepted, and the bytes relayed each way.
func (s *sniffer) pipe(client, target ssh.Channel) (res sniff.Result, accepted bool, in, out int64) {
	s.decided = make(chan struct{})
	fromClient, fromTarget := make(chan chunk), make(chan chunk)
	var wg sync.WaitGroup
	var heldIn, heldOut int64
	wg.Go(func() { in = s.half(target, client, fromClient, s.lateClient) })
	wg.Go(func() { out = s.half(client, target, fromTarget, s.lateBanner) })

	var cb, tb []byte
	timer := time.NewTimer(s.wait)
	defer timer.Stop()
wait:
	for {
		select {
		case c := <-fromClient:
			cb = append(cb, c.b...)
			s.sawClient = len(cb) > 0
			if c.err != nil {
				break wait
			}
			if _, done := sniff.Client(cb); done || len(cb) >= sniff.MaxClientBytes {
				break wait
			}
		case c := <-fromTarget:
			// A server that speaks first decides, whatever the
			// client said so far.
			tb = append(tb, c.b...)
			s.sawTarget = true
			break wait
		case <-timer.C:
			break wait
		}
	}
	s.result, _ = sniff.Client(cb)
	if len(tb) > 0 && sniff.Server(tb).Protocol == sniff.SSH {
		s.result = sniff.Result{Protocol: sniff.SSH}
	}
	s.accept = s.decide(s.result)
	if s.accept {
		if len(cb) > 0 {
			if _, err := target.Write(cb); err == nil {
				heldIn = int64(len(cb))
			}
		}
		if len(tb) > 0 {
			if _, err := client.Write(tb); err == nil {
				heldOut = int64(len(tb))
			}
		}
	} else {
		// The target first: not one client byte reaches it.
		target.Close()
		client.Close()
	}
	close(s.decided)
	wg.Wait()
	client.Close()
	target.Close()
	return s.result, s.accept, in + heldIn, out + heldOut
}

// half copies src to dst. Until the decision it hands what it reads to
// the decider over held; the decider relays that itself. The first chunk
// it reads after the decision goes through check, when not nil; then the
// rest is copyStream's bulk copy. It returns the bytes it wrote itself.
func (s *sniffer) half(dst, src ssh.Channel, held chan<- chunk, check func([]byte) bool) int64 {
	buf := relayBufs.Get().(*[]byte)
	var c chunk
	for {
		n, err := src.Read(*buf)
		c = chunk{bytes.Clone((*buf)[:n]), err}
		select {
		case held <- c:
			if err == nil {
				continue
			}
			// The decider relays what came before the end.
			relayBufs.Put(buf)
			<-s.decided
			switch {
			case !s.accept:
			case err == io.EOF:
				_ = dst.CloseWrite()
			default:
				dst.Close()
				src.Close()
			}
			return 0
		case <-s.decided:
		}
		break
	}
	relayBufs.Put(buf)
	if !s.accept {
		return 0
	}
	var written int64
	if len(c.b) > 0 {
		if check != nil && !check(c.b) {
			dst.Close()
			src.Close()
			return 0
		}
		k, err := dst.Write(c.b)
		written += int64(k)
		if err != nil {
			c.err = err
		}
	}
	if c.err == nil {
		var n int64
		n, c.err = copyStream(dst, src)
		written += n
	} else if c.err == io.EOF {
		c.err = nil
	}
	if c.err != nil {
		// One side is gone: nothing more can flow either way.
		dst.Close()
		src.Close()
	}
	_ = dst.CloseWrite()
	return written
}

// lateClient checks the client's first bytes when the decision was made
// without any (the time cap passed, or the target spoke first and was not
// SSH): an SSH identification string there is decided as SSH.
func (s *sniffer) lateClient(b []byte) bool {
	if s.sawClient || s.result.Protocol == sniff.SSH {
		return true
	}
	if r, _ := sniff.Client(b); r.Protocol == sniff.SSH {
		return s.decide(r)
	}
	return true
}

// lateBanner checks the target's first bytes when the decision was made
// on the client's alone: an SSH banner there is decided as SSH.
func (s *sniffer) lateBanner(b []byte) bool {
	if s.sawTarget || s.result.Protocol == sniff.SSH {
		return true
	}
	if r := sniff.Server(b); r.Protocol == sniff.SSH {
		return s.decide(r)
	}
	return true
}
