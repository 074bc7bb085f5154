package gateway

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode"

	"github.com/sluice-ssh/sluice/internal/admin"
	"github.com/sluice-ssh/sluice/internal/console"
	"github.com/sluice-ssh/sluice/internal/record"
	"github.com/sluice-ssh/sluice/internal/sshproxy"
)

var (
	_ console.RecordingFollower = (*Gateway)(nil)
	_ console.Terminals         = (*Gateway)(nil)
	_ sshproxy.Terminal         = (*terminal)(nil)
)

// followerQueue bounds what a recording keeps for one live viewer that
// has not taken it yet (record.File.Follow): 1.6 s of a session printing
// 10 MB/s. A viewer further behind is cut off and starts again from the
// file; the session never waits for it.
const followerQueue = 16 << 20

// liveRecordings are the recordings of live master sessions and their
// pty channels being relayed, for the console's live view and joins.
type liveRecordings struct {
	mu      sync.Mutex
	masters map[string]*masterRecording // by master session id
	terms   []*terminal                 // attached, oldest first
}

func (l *liveRecordings) addMaster(mr *masterRecording) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.masters == nil {
		l.masters = make(map[string]*masterRecording)
	}
	l.masters[mr.m.ID()] = mr
}

func (l *liveRecordings) removeMaster(mr *masterRecording) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.masters[mr.m.ID()] == mr {
		delete(l.masters, mr.m.ID())
	}
}

// FollowRecording follows the recording file live master session id is
// writing (see console.RecordingFollower).
func (g *Gateway) FollowRecording(id string) (path string, fl *record.Follower, skip int64, stop func(), err error) {
	g.live.mu.Lock()
	mr := g.live.masters[id]
	g.live.mu.Unlock()
	if mr == nil {
		return "", nil, 0, nil, admin.ErrNotFound
	}
	f := mr.current()
	if f == nil {
		return "", nil, 0, nil, admin.ErrNotFound
	}
	fl, skip = f.Follow(followerQueue)
	return f.Path(), fl, skip, func() { f.Unfollow(fl) }, nil
}

// terminal is a recorded pty channel operators can be announced on and
// join: its client's terminal, the target's stdin, and the recorder that
// notes both.
type terminal struct {
	live      *liveRecordings
	id        string // the channel's stacked session id
	master    string
	rec       *record.Channel
	readWrite bool // services[].console_join: read_write

	mu       sync.Mutex // guards the writers: nil once detached
	toClient io.Writer
	toTarget io.Writer
}

// Attach makes the channel attendable while the relay runs.
func (t *terminal) Attach(toClient, toTarget io.Writer) (detach func()) {
	t.mu.Lock()
	t.toClient, t.toTarget = toClient, toTarget
	t.mu.Unlock()
	t.live.mu.Lock()
	t.live.terms = append(t.live.terms, t)
	t.live.mu.Unlock()
	return func() {
		t.live.mu.Lock()
		if i := index(t.live.terms, t); i >= 0 {
			t.live.terms = append(t.live.terms[:i], t.live.terms[i+1:]...)
		}
		t.live.mu.Unlock()
		t.mu.Lock()
		t.toClient, t.toTarget = nil, nil
		t.mu.Unlock()
	}
}

func index(terms []*terminal, t *terminal) int {
	for i, x := range terms {
		if x == t {
			return i
		}
	}
	return -1
}

// errDetached: the channel's relay has ended.
var errDetached = errors.New("gateway: the channel has ended")

// notice tells the user text on their terminal, on a line of its own,
// and marks it in the recording as the gateway's (a marker, not output).
// It waits while the client does not read (its channel's window is full)
// until the channel ends.
func (t *terminal) notice(text string) {
	t.rec.Marker(text)
	t.mu.Lock()
	w := t.toClient
	t.mu.Unlock()
	if w != nil {
		_, _ = io.WriteString(w, "\r\n"+text+"\r\n")
	}
}

// Attend announces operator on a live pty channel (see console.Terminals).
func (g *Gateway) Attend(id, operator string, readWrite bool) (console.Attendance, error) {
	g.live.mu.Lock()
	var t *terminal
	for _, x := range g.live.terms {
		if x.id == id || x.master == id {
			t = x
			break
		}
	}
	g.live.mu.Unlock()
	if t == nil {
		return nil, admin.ErrNotFound
	}
	if readWrite && !t.readWrite {
		return nil, console.ErrJoinRefused
	}
	name := printable(operator)
	a := &attendance{t: t, name: name, readWrite: readWrite}
	if readWrite {
		t.notice(fmt.Sprintf("sluice: operator %s has joined this session read-write: they see your terminal and can type in it", name))
	} else {
		t.notice(fmt.Sprintf("sluice: operator %s is watching this session", name))
	}
	return a, nil
}

// printable is s without control characters, which would act on the
// user's terminal, cut to 64 runes.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
	if r := []rune(s); len(r) > 64 {
		s = string(r[:64])
	}
	return s
}

// attendance is one operator on a terminal.
type attendance struct {
	t         *terminal
	name      string
	readWrite bool
	leave     sync.Once
}

func (a *attendance) Channel() string { return a.t.id }

// Input sends p to the target as the user's keystrokes; the recorder
// keeps it as their input when the service records input.
func (a *attendance) Input(p []byte) error {
	if !a.readWrite {
		return console.ErrJoinRefused
	}
	a.t.mu.Lock()
	w := a.t.toTarget
	a.t.mu.Unlock()
	if w == nil {
		return errDetached
	}
	a.t.rec.Input(p)
	_, err := w.Write(p)
	return err
}

func (a *attendance) Leave() {
	a.leave.Do(func() {
		a.t.notice(fmt.Sprintf("sluice: operator %s stopped watching this session", a.name))
	})
}
