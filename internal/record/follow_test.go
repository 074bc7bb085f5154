package record

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"
)

// fileLines is every line of the recording at path, decompressed.
func fileLines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

// TestFollow: a Follower gets exactly the lines the file holds after its
// first skip, in order, and ends when the file closes.
func TestFollow(t *testing.T) {
	f, err := Create(t.TempDir(), FileHeader{SessionID: "gw1/s:1"}, Params{})
	if err != nil {
		t.Fatal(err)
	}
	c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true})
	c.Output([]byte("before\r\n"))
	fl, skip := f.Follow(1 << 20)
	if skip != 3 {
		t.Errorf("got skip %d, want 3 (file header, channel header, one event)", skip)
	}
	c.Output([]byte("after\r\n"))
	c.Resize(100, 30)
	c.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for more := true; more; {
		<-fl.Ready()
		var lines [][]byte
		lines, more = fl.Take()
		got = append(got, lines...)
	}
	want := fileLines(t, f.Path())[skip:]
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %q", len(got), len(want), got)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("line %d: got %q, want %q", i, got[i], want[i])
		}
	}
	if fl.Behind() {
		t.Error("a follower that kept up is Behind")
	}
	// Following a closed file ends at once.
	fl, _ = f.Follow(1 << 20)
	if _, more := fl.Take(); more {
		t.Error("a follower of a closed file expects more")
	}
}

// TestFollowBehind: a follower that does not take its lines is cut off
// rather than holding the session's output up.
func TestFollowBehind(t *testing.T) {
	f, err := Create(t.TempDir(), FileHeader{SessionID: "gw1/s:1"}, Params{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := f.Channel(Header{SessionID: "gw1/s:1/ssh/session:0", Pty: true})
	defer c.Close()
	fl, _ := f.Follow(4 << 10)
	defer f.Unfollow(fl)
	p := bytes.Repeat([]byte("x"), 1<<10)
	for range 64 {
		c.Output(p) // would block if the follower held it up
	}
	if !fl.Behind() {
		t.Fatal("got a follower 60 KiB behind with a 4 KiB queue not Behind")
	}
	if _, more := fl.Take(); more {
		t.Error("a follower cut off expects more")
	}
}
