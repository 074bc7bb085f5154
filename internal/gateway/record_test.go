package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/audit"
	"github.com/sluice-ssh/sluice/internal/record"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// masterEnd waits for the master's session.end event: the recording file
// is closed by then.
func (w *world) masterEnd() audit.Event {
	w.t.Helper()
	ends := w.events(audit.TypeSessionEnd, nil)
	if len(ends) != 1 {
		w.t.Fatalf("got session.end events %+v, want one", ends)
	}
	return ends[0]
}

// recording returns the path of the recording of the session channel whose
// id ends with suffix, once the master has ended (and the file is closed),
// and checks that session.end lists it with its SHA-256.
func (w *world) recording(suffix string) string {
	w.t.Helper()
	ofChannel := func(e audit.Event) bool { return strings.HasSuffix(e.SessionID, suffix) }
	evs := w.events("record", func(e audit.Event) bool { return ofChannel(e) && e.Verdict == audit.Accept })
	if len(evs) != 1 {
		w.t.Fatalf("got record events %+v, want one accepted for %s", evs, suffix)
	}
	p, _ := evs[0].Detail["recording"].(string)
	if !strings.HasPrefix(p, filepath.Join(w.dir, "state", "recordings")+string(filepath.Separator)) || !strings.HasSuffix(p, record.Ext) {
		w.t.Fatalf("recording path: got %q, want a %s file under state/recordings", p, record.Ext)
	}
	checkListed(w.t, w.masterEnd(), p)
	return p
}

// checkListed checks that session.end names path as "recording" and lists
// it in "recordings" with the SHA-256 of the file as stored.
func checkListed(t *testing.T, end audit.Event, path string) {
	t.Helper()
	if end.Detail["recording"] != path {
		t.Errorf("session.end recording: got %v, want %s", end.Detail["recording"], path)
	}
	list, _ := end.Detail["recordings"].([]any)
	if len(list) != 1 {
		t.Fatalf("session.end recordings: got %v, want one file", end.Detail["recordings"])
	}
	m, _ := list[0].(map[string]any)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if m["path"] != path || m["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("session.end recordings: got %v, want {path: %s, sha256: %x}", m, path, sum)
	}
}

// channelRec is one channel's part of a recording, read back.
type channelRec struct {
	file   *record.Reader
	ch     record.ChannelInfo
	events []record.Event
	played string // what record.Play writes for the channel
}

func readChannel(t *testing.T, path, sessionID string) channelRec {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := record.Validate(bytes.NewReader(data)); err != nil {
		t.Fatalf("record.Validate: %v", err)
	}
	rd, err := record.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := channelRec{file: rd, ch: record.ChannelInfo{N: -1}}
	for {
		e, isCh, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if isCh {
			if ch := rd.Channels[len(rd.Channels)-1]; ch.SessionID == sessionID {
				c.ch = ch
			}
			continue
		}
		if e.Channel == c.ch.N {
			c.events = append(c.events, e)
		}
	}
	if c.ch.N < 0 {
		t.Fatalf("%s: no channel %s in %+v", path, sessionID, rd.Channels)
	}
	var out bytes.Buffer
	noSleep := func(context.Context, time.Duration) error { return nil }
	if err := record.Play(context.Background(), bytes.NewReader(data), &out, record.PlayOptions{Speed: 1, Sleep: noSleep, Session: sessionID}); err != nil {
		t.Fatalf("record.Play: %v", err)
	}
	c.played = out.String()
	return c
}

// data returns the concatenated data of the events with code.
func (c channelRec) data(code string) string {
	var b strings.Builder
	for _, e := range c.events {
		if e.Code == code {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

// channelEnd returns the channel.end event of the session channel whose id
// ends with suffix.
func (w *world) channelEnd(suffix string) audit.Event {
	w.t.Helper()
	evs := w.events("channel.end", func(e audit.Event) bool { return strings.HasSuffix(e.SessionID, suffix) })
	if len(evs) != 1 {
		w.t.Fatalf("got channel.end events %+v, want one for %s", evs, suffix)
	}
	return evs[0]
}

// streamSum returns the channel.end event's account of one stream.
func streamSum(t *testing.T, e audit.Event, name string) (bytes int64, sum string, recorded int64) {
	t.Helper()
	streams, _ := e.Detail["streams"].(map[string]any)
	s, _ := streams[name].(map[string]any)
	if s == nil {
		t.Fatalf("channel.end streams: got %v, want %s", e.Detail["streams"], name)
	}
	n, _ := s["bytes"].(float64)
	r, _ := s["recorded"].(float64)
	sum, _ = s["sha256"].(string)
	return int64(n), sum, int64(r)
}

func hexOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestRecordPtySession(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{service: "    record: true\n"})
	r := w.run(strings.NewReader("echo SLUICE-$((6*7))-MARK; exit 0\n"), "ssh",
		append(w.args("ssh"), "-tt", w.target()+"@127.0.0.1")...)
	if r.code != 0 || !strings.Contains(r.stdout, "SLUICE-42-MARK") {
		t.Fatalf("got exit %d stdout %q, want 0 and the marker", r.code, r.stdout)
	}
	path := w.recording("/ssh/session:0")
	chID := w.channelEnd("/ssh/session:0").SessionID
	c := readChannel(t, path, chID)
	// The replay is exactly what the client's terminal was sent.
	if c.played != r.stdout {
		t.Errorf("replay: got %q, want what the client saw, %q", c.played, r.stdout)
	}
	if in := c.data("i"); in != "" {
		t.Errorf("input events: got %q, want none without record_input", in)
	}
	pty := w.events("pty", nil)
	if len(pty) != 1 {
		t.Fatalf("got pty events %+v, want one", pty)
	}
	wantW, wantH := int(pty[0].Detail["columns"].(float64)), int(pty[0].Detail["rows"].(float64))
	if wantW == 0 || wantH == 0 {
		wantW, wantH = 80, 24 // a client without a terminal size: asciicast needs one
	}
	if !c.ch.Pty || c.ch.Width != wantW || c.ch.Height != wantH || c.ch.Term != pty[0].Detail["term"] {
		t.Errorf("channel header: got %+v, want a pty %dx%d TERM %v", c.ch, wantW, wantH, pty[0].Detail["term"])
	}
	if h := c.file.Header; h.User != "alice" || !strings.HasPrefix(h.SessionID, "gw1/ssh-in:") || strings.Contains(h.SessionID, "/ssh/") {
		t.Errorf("file header: got %+v, want alice's master session", h)
	}
	if c.ch.Command != "" {
		t.Errorf("command: got %q, want none for a shell", c.ch.Command)
	}
	// The keystrokes are neither recorded nor digested (a password's
	// digest can be guessed).
	if n, sum, rec := streamSum(t, w.channelEnd("/ssh/session:0"), "stdin"); n == 0 || sum != "" || rec != 0 {
		t.Errorf("stdin: got %d bytes, sha256 %q, %d recorded; want a count only", n, sum, rec)
	}
}

func TestRecordExecWithInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{service: "    record: true\n"})
	const cmd = "cat; echo out-MARK; echo err-MARK >&2"
	r := w.run(strings.NewReader("typed-INPUT\n"), "ssh", append(w.args("ssh"), w.target()+"@127.0.0.1", cmd)...)
	if r.code != 0 || r.stdout != "typed-INPUT\nout-MARK\n" || r.stderr != "err-MARK\n" {
		t.Fatalf("got %d %q %q, want 0, the input and out-MARK, err-MARK", r.code, r.stdout, r.stderr)
	}
	end := w.channelEnd("/ssh/session:0")
	c := readChannel(t, w.recording("/ssh/session:0"), end.SessionID)
	if c.ch.Command != cmd || c.ch.Pty {
		t.Errorf("channel header: got %+v, want command %q without a pty", c.ch, cmd)
	}
	// Without a pty the input is recorded without record_input: it is
	// what the program was told to do.
	if got := c.data("i"); got != "typed-INPUT\n" {
		t.Errorf("input: got %q, want %q", got, "typed-INPUT\n")
	}
	if got := c.data("o"); got != r.stdout {
		t.Errorf("stdout: got %q, want %q", got, r.stdout)
	}
	if got := c.data("e"); got != r.stderr {
		t.Errorf("stderr: got %q, want %q", got, r.stderr)
	}
	for name, want := range map[string]string{"stdin": "typed-INPUT\n", "stdout": r.stdout, "stderr": r.stderr} {
		n, sum, rec := streamSum(t, end, name)
		if n != int64(len(want)) || rec != n || sum != hexOf([]byte(want)) {
			t.Errorf("%s: got %d bytes, %d recorded, sha256 %s; want %d, all, %s", name, n, rec, sum, len(want), hexOf([]byte(want)))
		}
	}
}

// TestRecordScriptInput: a shell without a pty fed a script (ssh -T host
// < script, ssh host bash -s) leaves the script in the recording, and
// sluice replay shows it.
func TestRecordScriptInput(t *testing.T) {
	t.Parallel()
	// bash -s reads its commands from stdin, which a policy with deny
	// patterns refuses (exec.match): this one permits every command.
	w := newWorld(t, worldOptions{service: "    record: true\n", policy: strings.Replace(defaultPolicy, `, deny: ["rm -rf.*"]`, "", 1)})
	const script = "echo SCRIPT-$((6*7))-RAN\nrm -f /nonexistent/SECRET-MARK\nexit 0\n"
	r := w.run(strings.NewReader(script), "ssh", append(w.args("ssh"), "-T", w.target()+"@127.0.0.1")...)
	if r.code != 0 || !strings.Contains(r.stdout, "SCRIPT-42-RAN") {
		t.Fatalf("ssh -T: got %d %q %q, want 0 and the marker", r.code, r.stdout, r.stderr)
	}
	end := w.channelEnd("/ssh/session:0")
	c := readChannel(t, w.recording("/ssh/session:0"), end.SessionID)
	if got := c.data("i"); got != script {
		t.Errorf("input: got %q, want the script %q", got, script)
	}
	if !strings.Contains(c.played, "rm -f /nonexistent/SECRET-MARK") || !strings.Contains(c.played, "SCRIPT-42-RAN") {
		t.Errorf("replay: got %q, want the script and its output", c.played)
	}
	r = w.run(strings.NewReader(script), "ssh", append(w.args("ssh"), w.target()+"@127.0.0.1", "bash -s")...)
	if r.code != 0 || !strings.Contains(r.stdout, "SCRIPT-42-RAN") {
		t.Fatalf("ssh bash -s: got %d %q %q, want 0 and the marker", r.code, r.stdout, r.stderr)
	}
}

// TestRecordOneFilePerMaster: the channels of one connection share one
// file, each replayable alone.
func TestRecordOneFilePerMaster(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOptions{service: "    record: true\n"})
	client := w.dial(t, w.aliceConfig(t))
	for i := range 5 {
		s, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Output(fmt.Sprintf("echo channel-%d", i))
		if err != nil || string(out) != fmt.Sprintf("channel-%d\n", i) {
			t.Fatalf("session %d: got %q %v", i, out, err)
		}
	}
	client.Close()
	end := w.masterEnd()
	p, _ := end.Detail["recording"].(string)
	checkListed(t, end, p)
	files, _ := filepath.Glob(filepath.Join(w.dir, "state", "recordings", "*"))
	if len(files) != 1 || files[0] != p {
		t.Fatalf("recording files: got %v, want one, %s", files, p)
	}
	for i := range 5 {
		id := end.SessionID + "/ssh/session:" + strconv.Itoa(i)
		if c := readChannel(t, p, id); c.played != fmt.Sprintf("channel-%d\n", i) {
			t.Errorf("replay of %s: got %q", id, c.played)
		}
	}
}

// downloadSum runs ssh with remote and returns the SHA-256 and size of its
// stdout (streamed, not kept), its stderr and exit code.
func (w *world) downloadSum(remote string) (sum string, n int64, stderr string, code int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", append(w.args("ssh"), w.target()+"@127.0.0.1", remote)...)
	h := sha256.New()
	cw := &countingWriter{w: h}
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = cw, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		w.t.Fatalf("ssh: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, errb.String(), code
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeRandomFile writes n random bytes to path in chunks and returns their
// SHA-256.
func writeRandomFile(t *testing.T, path string, n int64) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestRecordLargeDownload: a 256 MiB exec download on a recorded service
// arrives whole (it used to be cut after a few MB when the recorder's queue
// overflowed); the recording keeps the first record.max_bytes_per_stream
// of it and the channel.end event its size and SHA-256.
func TestRecordLargeDownload(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() {
		size = 16 << 20
	}
	w := newWorld(t, worldOptions{service: "    record: true\n"})
	src := filepath.Join(w.dir, "big.bin")
	want := writeRandomFile(t, src, size)
	got, n, stderr, code := w.downloadSum("cat " + src)
	if code != 0 || n != size || got != want {
		t.Fatalf("download: exit %d, %d bytes, sha256 %s (stderr %q); want 0, %d, %s", code, n, got, stderr, size, want)
	}
	end := w.channelEnd("/ssh/session:0")
	bytes, sum, rec := streamSum(t, end, "stdout")
	if bytes != size || sum != want || rec != 1<<20 {
		t.Errorf("channel.end stdout: got %d bytes, sha256 %s, %d recorded; want %d, %s, %d", bytes, sum, rec, size, want, 1<<20)
	}
	p := w.recording("/ssh/session:0")
	c := readChannel(t, p, end.SessionID)
	if len(c.events) == 0 || !strings.Contains(c.events[len(c.events)-1].Data, "stdout cut at 1048576 bytes") {
		t.Errorf("recording: want it to end with the cap's marker")
	}
	if st, err := os.Stat(p); err != nil || st.Size() > 3<<20 {
		t.Errorf("recording size: got %v %v, want at most about the cap", st.Size(), err)
	}
}

// TestRecordRsyncAndGit: rsync of a large file and a git clone of a repo
// holding one, on a recorded service, arrive intact.
func TestRecordRsyncAndGit(t *testing.T) {
	t.Parallel()
	sshtest.RequireTool(t, "rsync")
	git := sshtest.RequireTool(t, "git")
	size := int64(64 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	w := newWorld(t, worldOptions{service: "    record: true\n"})
	src := filepath.Join(w.dir, "big.bin")
	want := writeRandomFile(t, src, size)
	sshCmd := "ssh " + strings.Join(w.args("ssh"), " ") + " -o User=" + w.target()
	dst := filepath.Join(w.dir, "copy.bin")
	if r := w.run(nil, "rsync", "-e", sshCmd, "127.0.0.1:"+src, dst); r.code != 0 {
		t.Fatalf("rsync: exit %d: %s", r.code, r.stderr)
	}
	if got := fileSum(t, dst); hex.EncodeToString(got[:]) != want {
		t.Fatalf("rsync: got sha256 %x, want %s", got, want)
	}

	repo := filepath.Join(w.dir, "repo")
	gitRun := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.org", "GIT_SSH_COMMAND="+sshCmd, "GIT_CONFIG_NOSYSTEM=1", "HOME="+w.dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(repo, 0o700); err != nil {
		t.Fatal(err)
	}
	gitRun(repo, "init", "-q")
	if err := os.Rename(src, filepath.Join(repo, "big.bin")); err != nil {
		t.Fatal(err)
	}
	gitRun(repo, "add", "big.bin")
	gitRun(repo, "commit", "-q", "-m", "big")
	gitRun(w.dir, "clone", "-q", "ssh://127.0.0.1"+repo, filepath.Join(w.dir, "clone"))
	if got := fileSum(t, filepath.Join(w.dir, "clone", "big.bin")); hex.EncodeToString(got[:]) != want {
		t.Fatalf("git clone: got sha256 %x, want %s", got, want)
	}
}

func TestRecordUnavailable(t *testing.T) {
	tests := []struct {
		name     string
		tail     string
		wantCode int
	}{
		{"fail_closed refuses the channel", "", 255},
		{"best_effort runs unrecorded", "record:\n  on_failure: best_effort\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{service: "    record: true\n", tail: tt.tail})
			// A file where the recordings folder belongs: no recording can
			// be created, whoever runs the test.
			if err := os.WriteFile(filepath.Join(w.dir, "state", "recordings"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := w.ssh(nil, "echo ran-MARK")
			if r.code != tt.wantCode {
				t.Fatalf("got exit %d (stdout %q stderr %q), want %d", r.code, r.stdout, r.stderr, tt.wantCode)
			}
			if ran := strings.Contains(r.stdout, "ran-MARK"); ran != (tt.wantCode == 0) {
				t.Fatalf("got stdout %q, want the command to run: %v", r.stdout, tt.wantCode == 0)
			}
			if got := w.gw.RecordingFailures(); got != 1 {
				t.Errorf("RecordingFailures: got %d, want 1", got)
			}
			evs := w.events("record", func(e audit.Event) bool { return e.Verdict == audit.Reject })
			if len(evs) != 1 || evs[0].Rule != "record.on_failure" {
				t.Errorf("got %+v, want one record reject by record.on_failure", evs)
			}
			if unrecorded := strings.Contains(evs[0].Reason, "goes on unrecorded"); unrecorded != (tt.wantCode == 0) {
				t.Errorf("reason: got %q, want it to say the channel goes on unrecorded: %v", evs[0].Reason, tt.wantCode == 0)
			}
		})
	}
}

// smallDisk mounts a tmpfs of size bytes at dir for the test: a disk that
// fills. It needs root (CAP_SYS_ADMIN).
func smallDisk(t *testing.T, dir string, size int) {
	t.Helper()
	mount := sshtest.RequireTool(t, "mount")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mount, "-t", "tmpfs", "-o", "size="+strconv.Itoa(size)+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("mount a tmpfs (needs root): %v: %s", err, out)
		if os.Getenv("SLUICE_INTEROP") == "require" {
			t.Fatalf("SLUICE_INTEROP=require: %s", msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// TestRecordDiskFull fills the recordings' disk during a download whose
// streams are recorded without a cap. fail_closed ends the channel with a
// sluice: line on stderr and leaves a valid file; best_effort lets the
// download finish, audits the recording as incomplete and counts it.
func TestRecordDiskFull(t *testing.T) {
	for _, mode := range []string{"fail_closed", "best_effort"} {
		t.Run(mode, func(t *testing.T) {
			tail := fmt.Sprintf("record:\n  dir: ./rec\n  on_failure: %s\n  max_bytes_per_stream: 0\n", mode)
			w := newWorld(t, worldOptions{service: "    record: true\n", tail: tail, gateway: "  admin:\n    listen: 127.0.0.1:0\n"})
			recDir := filepath.Join(w.dir, "rec")
			smallDisk(t, recDir, 512<<10)
			const size = 32 << 20
			src := filepath.Join(w.dir, "big.bin")
			want := writeRandomFile(t, src, size)
			got, n, stderr, code := w.downloadSum("cat " + src)
			fails := w.events("record", func(e audit.Event) bool { return e.Verdict == audit.Reject })
			if len(fails) != 1 || fails[0].Rule != "record.on_failure" {
				t.Fatalf("got record rejects %+v, want one by record.on_failure", fails)
			}
			switch mode {
			case "fail_closed":
				if code != 255 || n >= size || !strings.Contains(stderr, "sluice: session recording failed; channel ended") {
					t.Errorf("got exit %d, %d bytes, stderr %q; want 255, cut short, the sluice: line", code, n, stderr)
				}
				if !strings.Contains(fails[0].Reason, "channel ended") {
					t.Errorf("reason: got %q, want it to say the channel ended", fails[0].Reason)
				}
			case "best_effort":
				if code != 0 || n != size || got != want {
					t.Errorf("got exit %d, %d bytes, sha256 %s (stderr %q); want 0, %d, %s", code, n, got, stderr, size, want)
				}
				if !strings.Contains(fails[0].Reason, "recording incomplete") {
					t.Errorf("reason: got %q, want it to say the recording is incomplete", fails[0].Reason)
				}
				re := regexp.MustCompile(`(?m)^sluice_recording_failures_total\{service="ssh-in"\} 1$`)
				deadline := time.Now().Add(5 * time.Second)
				for {
					_, body := get(t, "http://"+w.gw.AdminAddr().String()+"/metrics")
					if re.MatchString(body) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("metrics: no %s in:\n%s", re, body)
					}
					sleepBriefly()
				}
			}
			// The file is valid up to its last whole event, and listed
			// with its digest as stored.
			end := w.masterEnd()
			p, _ := end.Detail["recording"].(string)
			checkListed(t, end, p)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := record.Validate(bytes.NewReader(data)); err != nil {
				t.Errorf("recording after the disk filled: %v, want valid", err)
			}
			if !strings.HasPrefix(p, recDir+"/") {
				t.Errorf("recording %s: want it in %s", p, recDir)
			}
		})
	}
}
