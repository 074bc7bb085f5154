package sftpproxy

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// ownCounter is the proxy's upstream end, counting the proxy's own
// requests (ids from ownID down) among the packets written to the server.
type ownCounter struct {
	pipeStream
	n   *atomic.Int64
	buf []byte // a packet not yet whole
}

func (c *ownCounter) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	for len(c.buf) >= 4 {
		n := int(binary.BigEndian.Uint32(c.buf))
		if len(c.buf) < 4+n {
			break
		}
		if n >= 5 && c.buf[4] != fxpInit && binary.BigEndian.Uint32(c.buf[5:]) > ownID-1<<16 {
			c.n.Add(1)
		}
		c.buf = c.buf[4+n:]
	}
	return c.pipeStream.Write(p)
}

// TestCanonicalRoundTrips counts the round trips to the server that
// canonical paths add to each operation under path rules (the proxy waits
// for each REALPATH before it decides): none for operations on handles,
// one per path otherwise, and none at all without path rules.
// docs/benchmarks.md prices them at 10 ms round-trip time.
func TestCanonicalRoundTrips(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.txt", "b.txt", "c.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	in := func(name string) []byte { return str(filepath.Join(dir, name)) }
	u32 := func(v uint32) []byte { return appendU32(nil, v) }
	ops := []struct {
		name string
		req  []byte
		want int64 // under path rules
	}{
		{"OPEN to read", packet(fxpOpen, 1, in("a.txt"), u32(fxfRead), u32(0)), 1},
		{"OPEN to create", packet(fxpOpen, 2, in("new.txt"), u32(fxfWrite|fxfCreat), u32(0)), 1},
		{"STAT", packet(fxpStat, 3, in("a.txt")), 1},
		{"LSTAT", packet(fxpLstat, 4, in("a.txt")), 1},
		{"SETSTAT", packet(fxpSetstat, 5, in("a.txt"), u32(0)), 1},
		{"OPENDIR", packet(fxpOpendir, 6, in("sub")), 1},
		{"MKDIR", packet(fxpMkdir, 7, in("newdir"), u32(0)), 1},
		{"RMDIR", packet(fxpRmdir, 8, in("newdir")), 1},
		{"READLINK", packet(fxpReadlink, 9, in("a.txt")), 1},
		{"REMOVE", packet(fxpRemove, 10, in("c.txt")), 1},
		{"RENAME", packet(fxpRename, 11, in("b.txt"), in("b2.txt")), 2},
		{"SYMLINK", packet(fxpSymlink, 12, in("a.txt"), in("link")), 2},
		{"REALPATH", packet(fxpRealpath, 13, str(".")), 0},
	}
	for _, rules := range []bool{true, false} {
		pol := permissive()
		if rules {
			pol.DenyPaths = []string{"/nowhere/*/.ssh"}
		}
		var own atomic.Int64
		c, _ := rawSessionAudited(t, pol, Peers{}, dir, &sink{}, &own)
		var buf []byte
		for _, op := range ops {
			before := own.Load()
			if _, err := c.Write(op.req); err != nil {
				t.Fatal(err)
			}
			var pkt []byte
			if pkt, buf, err = readPacket(c, buf); err != nil {
				t.Fatalf("%s: %v", op.name, err)
			}
			resp, err := parseResponse(pkt[4:])
			if err != nil || resp.typ == fxpStatus && resp.status != 0 && op.name != "READLINK" {
				t.Fatalf("%s: got %+v, %v; want it done", op.name, resp, err)
			}
			want := op.want
			if !rules {
				want = 0
			}
			if got := own.Load() - before; got != want {
				t.Errorf("path rules %v, %s: got %d round trips of the proxy's own, want %d", rules, op.name, got, want)
			}
			if op.name == "OPEN to read" {
				// Operations on the handle: none.
				before := own.Load()
				h := string(resp.handle)
				for i, req := range [][]byte{
					packet(fxpRead, 100, str(h), make([]byte, 8), u32(10)),
					packet(fxpFstat, 101, str(h)),
					packet(fxpClose, 102, str(h)),
				} {
					if _, err := c.Write(req); err != nil {
						t.Fatal(err)
					}
					if _, buf, err = readPacket(c, buf); err != nil {
						t.Fatalf("handle request %d: %v", i, err)
					}
				}
				if got := own.Load() - before; got != 0 {
					t.Errorf("path rules %v: READ, FSTAT, CLOSE on a handle: got %d round trips of the proxy's own, want 0", rules, got)
				}
			}
		}
		c.Close()
		// The next round works in a fresh folder state.
		_ = os.Rename(filepath.Join(dir, "b2.txt"), filepath.Join(dir, "b.txt"))
		_ = os.WriteFile(filepath.Join(dir, "c.txt"), []byte("x"), 0o644)
		_ = os.Remove(filepath.Join(dir, "link"))
		_ = os.Remove(filepath.Join(dir, "new.txt"))
	}
}
