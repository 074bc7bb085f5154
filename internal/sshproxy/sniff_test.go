package sshproxy

import (
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sniff"
)

// sniffWorld is a user and a target channel with a sniffer's pipe
// between them, deciding with verdicts in turn and recording what it was
// asked.
type sniffWorld struct {
	user, target ssh.Channel
	mu           sync.Mutex
	asked        []sniff.Result
	done         chan struct{}
	res          sniff.Result
	accepted     bool
	in, out      int64
}

func newSniffWorld(t *testing.T, wait time.Duration, verdicts ...bool) *sniffWorld {
	t.Helper()
	w := &sniffWorld{done: make(chan struct{})}
	var gwClient, gwUp ssh.Channel
	w.user, gwClient = channelPair(t, ssh.CipherAES128GCM)
	gwUp, w.target = channelPair(t, ssh.CipherAES128GCM)
	s := &sniffer{wait: wait, decide: func(r sniff.Result) bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.asked = append(w.asked, r)
		return verdicts[len(w.asked)-1]
	}}
	go func() {
		w.res, w.accepted, w.in, w.out = s.pipe(gwClient, gwUp)
		close(w.done)
	}()
	t.Cleanup(func() {
		w.user.Close()
		w.target.Close()
		<-w.done
	})
	return w
}

func (w *sniffWorld) wait(t *testing.T) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		t.Fatal("pipe did not end within 20s")
	}
}

func readAll(t *testing.T, ch ssh.Channel) string {
	t.Helper()
	b, err := io.ReadAll(ch)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestSnifferRefusedBeforeAnyByte(t *testing.T) {
	w := newSniffWorld(t, 5*time.Second, false)
	hello := "GET / HTTP/1.1\r\nHost: evil\r\n\r\n"
	if _, err := w.user.Write([]byte(hello)); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, w.target); got != "" {
		t.Errorf("target got %q, want nothing", got)
	}
	if got := readAll(t, w.user); got != "" {
		t.Errorf("user got %q, want nothing", got)
	}
	w.wait(t)
	if w.accepted || w.res.Protocol != sniff.HTTP || w.res.Host != "evil" || w.in != 0 || w.out != 0 {
		t.Errorf("got %+v accepted=%v in=%d out=%d, want http evil refused, 0 bytes", w.res, w.accepted, w.in, w.out)
	}
}

func TestSnifferClientEndsBeforeDecision(t *testing.T) {
	// "SS" could still be SSH: only the client's EOF decides.
	w := newSniffWorld(t, 10*time.Second, true)
	if _, err := w.user.Write([]byte("SS")); err != nil {
		t.Fatal(err)
	}
	if err := w.user.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, w.target); got != "SS" {
		t.Errorf("target got %q, want %q", got, "SS")
	}
	if _, err := w.target.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	w.target.CloseWrite()
	if got := readAll(t, w.user); got != "bye" {
		t.Errorf("user got %q, want %q", got, "bye")
	}
	w.wait(t)
	if !w.accepted || w.res.Protocol != sniff.Unknown || w.res.Partial != sniff.SSH || w.in != 2 || w.out != 3 {
		t.Errorf("got %+v accepted=%v in=%d out=%d, want unknown (partial ssh), 2 and 3 bytes", w.res, w.accepted, w.in, w.out)
	}
}

func TestSnifferTimeCap(t *testing.T) {
	// Nobody speaks: decided as unknown once the cap passes. What the
	// client sends next is relayed, unless it is an SSH identification
	// string, which is decided again (and refused here).
	for _, tc := range []struct {
		send, want string
		asked      []sniff.Protocol
	}{
		{"late bytes\n", "late bytes\n", []sniff.Protocol{sniff.Unknown}},
		{"SSH-2.0-x\r\n", "", []sniff.Protocol{sniff.Unknown, sniff.SSH}},
	} {
		w := newSniffWorld(t, 200*time.Millisecond, true, false)
		deadline := time.Now().Add(10 * time.Second)
		for {
			w.mu.Lock()
			n := len(w.asked)
			w.mu.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no decision 10s after a 200ms cap")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := w.user.Write([]byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		w.user.CloseWrite()
		if got := readAll(t, w.target); got != tc.want {
			t.Errorf("%q: target got %q, want %q", tc.send, got, tc.want)
		}
		w.target.Close()
		w.wait(t)
		var asked []sniff.Protocol
		for _, r := range w.asked {
			asked = append(asked, r.Protocol)
		}
		if !slices.Equal(asked, tc.asked) {
			t.Errorf("%q: asked %v, want %v", tc.send, asked, tc.asked)
		}
	}
}

func TestSnifferLateSSHBanner(t *testing.T) {
	// Decided on the client's HTTP request; then the target answers with
	// an SSH banner: asked again, refused, and the banner never reaches
	// the user.
	w := newSniffWorld(t, 5*time.Second, true, false)
	req := "GET / HTTP/1.0\r\n\r\n"
	if _, err := w.user.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(req))
	if _, err := io.ReadFull(w.target, buf); err != nil || string(buf) != req {
		t.Fatalf("target got %q %v, want the request", buf, err)
	}
	if _, err := w.target.Write([]byte("SSH-2.0-mimic\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, w.user); got != "" {
		t.Errorf("user got %q, want nothing", got)
	}
	w.wait(t)
	if len(w.asked) != 2 || w.asked[0].Protocol != sniff.HTTP || w.asked[1].Protocol != sniff.SSH {
		t.Errorf("asked %+v, want http then ssh", w.asked)
	}
}
