package sftpproxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func u64(v uint64) []byte { return appendU32(appendU32(nil, uint32(v>>32)), uint32(v)) }

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want request
		err  error
	}{
		{"open", packet(fxpOpen, 1, str("a/b"), appendU32(nil, fxfWrite|fxfCreat), appendU32(nil, attrSize), u64(5)),
			request{typ: fxpOpen, id: 1, path: "a/b", pflags: fxfWrite | fxfCreat, attrs: attrs{flags: attrSize, size: 5}}, nil},
		{"write", packet(fxpWrite, 2, str("h"), u64(10), str("data")),
			request{typ: fxpWrite, id: 2, handle: "h", offset: 10, length: 4, data: []byte("data")}, nil},
		{"symlink", packet(fxpSymlink, 3, str("target"), str("link")),
			request{typ: fxpSymlink, id: 3, path: "target", path2: "link"}, nil},
		{"copy-data", packet(fxpExtended, 4, str(extCopyData), str("r"), u64(1), u64(2), str("w"), u64(3)),
			request{typ: fxpExtended, id: 4, ext: extCopyData, handle: "r", offset: 1, length: 2, handle2: "w", offset2: 3}, nil},
		{"unknown extension", packet(fxpExtended, 5, str("x@y"), []byte{1, 2, 3}),
			request{typ: fxpExtended, id: 5, ext: "x@y"}, nil},
		{"short string", packet(fxpStat, 6, appendU32(nil, 10), []byte("abc")), request{}, ErrMalformed},
		// OpenSSH's sftp-server ignores bytes after a request's fields.
		{"trailing", packet(fxpClose, 7, str("h"), []byte{0}), request{typ: fxpClose, id: 7, handle: "h"}, nil},
		{"write padded", packet(fxpWrite, 8, str("h"), u64(0), str("data"), make([]byte, 12)),
			request{typ: fxpWrite, id: 8, handle: "h", length: 4, data: []byte("data")}, nil},
		{"NUL", packet(fxpRemove, 8, str("a\x00b")), request{}, ErrMalformed},
		{"response type", packet(fxpStatus, 9, appendU32(nil, 0)), request{}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRequest(tc.pkt[4:])
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.typ != tc.want.typ || got.id != tc.want.id || got.ext != tc.want.ext || got.path != tc.want.path ||
				got.path2 != tc.want.path2 || got.handle != tc.want.handle || got.handle2 != tc.want.handle2 ||
				got.pflags != tc.want.pflags || got.offset != tc.want.offset || got.length != tc.want.length ||
				got.offset2 != tc.want.offset2 || !bytes.Equal(got.data, tc.want.data) || got.attrs != tc.want.attrs {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// readPacket reads one packet (length field included) into buf, growing it
// when needed, without reading ahead: tests read their end of a pipe one
// packet at a time with it. A clean EOF before a packet starts is io.EOF.
func readPacket(r io.Reader, buf []byte) (pkt, next []byte, err error) {
	if cap(buf) < 4 {
		buf = make([]byte, 4, 32<<10)
	}
	if _, err := io.ReadFull(r, buf[:4]); err != nil {
		return nil, buf, err
	}
	n := binary.BigEndian.Uint32(buf[:4])
	switch {
	case n > maxPacket:
		return nil, buf, fmt.Errorf("%w: %d bytes, maximum %d", ErrTooLarge, n, maxPacket)
	case n == 0:
		return nil, buf, fmt.Errorf("%w: empty", ErrMalformed)
	}
	total := 4 + int(n)
	if cap(buf) < total {
		nb := make([]byte, total)
		copy(nb, buf[:4])
		buf = nb
	}
	buf = buf[:total]
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, fmt.Errorf("sftpproxy: reading packet: %w", err)
	}
	return buf, buf, nil
}

// newPacketReader reads b as the relay reads a stream.
func newPacketReader(b []byte) *packetReader {
	return &packetReader{br: bufio.NewReaderSize(bytes.NewReader(b), readBufSize)}
}

func TestPacketReader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		err  error
	}{
		{"ok", packet(fxpStat, 1, str("/")), nil},
		{"eof", nil, io.EOF},
		{"empty", []byte{0, 0, 0, 0}, ErrMalformed},
		{"too large", appendU32(nil, maxPacket+1), ErrTooLarge},
		{"truncated", packet(fxpStat, 1, str("/"))[:8], io.ErrUnexpectedEOF},
		{"short header", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"larger than the read-ahead", packet(fxpWrite, 1, str("h"), u64(0), str(string(make([]byte, 2*readBufSize)))), nil},
		{"truncated, larger than the read-ahead", packet(fxpWrite, 1, str("h"), u64(0), str(string(make([]byte, 2*readBufSize))))[:readBufSize+10], io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := newPacketReader(tc.in).next()
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if err == nil && !bytes.Equal(got, tc.in) {
				t.Fatalf("got %x, want %x", got, tc.in)
			}
		})
	}
}

// TestPacketReaderSequence reads packets of every size class back to back,
// in place and copied, as the relay does.
func TestPacketReaderSequence(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i, n := range []int{0, 10, chunkSize, readBufSize - 4 - 13, readBufSize, 3 * readBufSize, 1} {
		p := packet(fxpWrite, uint32(i), str("h"), u64(0), str(string(bytes.Repeat([]byte{byte(i)}, n))))
		stream = append(stream, p...)
		want = append(want, p)
	}
	pr := newPacketReader(stream)
	for i, w := range want {
		got, err := pr.next()
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("packet %d: got %d bytes (id %d), %v; want %d bytes", i, len(got), binary.BigEndian.Uint32(got[5:]), err, len(w))
		}
	}
	if _, err := pr.next(); err != io.EOF {
		t.Fatalf("after the last packet: got %v, want io.EOF", err)
	}
}

// TestBatcher checks that a batcher writes whole chunks as soon as it
// holds them and the rest on flush, in order.
func TestBatcher(t *testing.T) {
	var got [][]byte
	w := writerFunc(func(p []byte) (int, error) {
		got = append(got, bytes.Clone(p))
		return len(p), nil
	})
	b := batcher{w: w}
	var all []byte
	for i, n := range []int{chunkSize + 29, chunkSize + 29, 28, 3 * chunkSize} {
		p := bytes.Repeat([]byte{byte(i)}, n)
		all = append(all, p...)
		if err := b.write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.flush(); err != nil {
		t.Fatal(err)
	}
	if b.n != int64(len(all)) || !bytes.Equal(bytes.Join(got, nil), all) {
		t.Fatalf("got %d bytes (counted %d), want %d in order", len(bytes.Join(got, nil)), b.n, len(all))
	}
	for i, p := range got[:len(got)-1] {
		if len(p) != chunkSize {
			t.Fatalf("write %d: got %d bytes, want %d", i, len(p), chunkSize)
		}
	}
	if err := b.flush(); err != nil || len(got) != 6 {
		t.Fatalf("got %d writes, %v; want 6 and an empty flush writing nothing", len(got), err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func FuzzParsePacket(f *testing.F) {
	seeds := [][]byte{
		version{version: 3, exts: [][2][]byte{{[]byte(extPosixRename), []byte("1")}}}.marshal(fxpInit),
		version{version: 3}.marshal(fxpVersion),
		packet(fxpOpen, 1, str("/etc/passwd"), appendU32(nil, fxfRead), appendU32(nil, attrSize|attrUIDGID|attrPermissions|attrACModTime|attrExtended), u64(1), appendU32(nil, 0), appendU32(nil, 0), appendU32(nil, 0o644), appendU32(nil, 0), appendU32(nil, 0), appendU32(nil, 1), str("k"), str("v")),
		packet(fxpWrite, 2, str("h"), u64(0), str("data")),
		packet(fxpRead, 3, str("h"), u64(0), appendU32(nil, 32768)),
		packet(fxpRename, 4, str("a"), str("b")),
		packet(fxpSymlink, 4, str("target"), str("link")),
		packet(fxpClose, 4, str("h"), []byte{1, 2, 3}),
		packet(fxpExtended, 5, str(extCopyData), str("r"), u64(1), u64(2), str("w"), u64(3)),
		packet(fxpExtended, 6, str(extLsetstat), str("p"), appendU32(nil, 0)),
		packet(fxpExtended, 7, str(extUsersGroups), str(""), str("")),
		packet(fxpStatus, 8, appendU32(nil, fxPermissionDenied), str("no"), str("")),
		packet(fxpName, 9, appendU32(nil, 1), str("/home"), str("/home"), appendU32(nil, 0)),
		packet(fxpData, 10, str("xyz")),
		packet(fxpHandle, 11, str("h")),
		statusPacket(12, fxOK, "ok"),
		realpathPacket(13, "."),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkt, err := newPacketReader(b).next()
		if err != nil {
			return
		}
		body := pkt[4:]
		if q, err := parseRequest(body); err == nil {
			if q.typ == fxpWrite && uint64(len(q.data)) != q.length {
				t.Fatalf("WRITE: got %d data bytes, length %d", len(q.data), q.length)
			}
			if q.typ == fxpSymlink {
				// The proxy's rewrite in the other order reads back swapped.
				again, err := parseRequest(twoPathPacket(fxpSymlink, q.id, q.path2, q.path)[4:])
				if err != nil || again.path != q.path2 || again.path2 != q.path || again.id != q.id {
					t.Fatalf("SYMLINK rewritten: got %+v, %v; want %q, %q", again, err, q.path2, q.path)
				}
			}
			for _, p := range []string{q.path, q.path2} {
				if q.ext != extHomeDir && strings.IndexByte(p, 0) >= 0 {
					t.Fatalf("got path %q with a NUL, want it refused", p)
				}
			}
		}
		if r, err := parseResponse(body); err == nil && r.typ == fxpData && len(r.data) > len(body) {
			t.Fatalf("DATA of %d bytes in a %d byte packet", len(r.data), len(body))
		}
		for _, typ := range []byte{fxpInit, fxpVersion} {
			if v, err := parseVersion(body, typ); err == nil {
				again, err := parseVersion(v.marshal(typ)[4:], typ)
				if err != nil || again.version != v.version || len(again.exts) != len(v.exts) {
					t.Fatalf("version round trip: got %+v, %v; want %+v", again, err, v)
				}
			}
		}
	})
}

func TestPaths(t *testing.T) {
	tests := []struct {
		cwd, in, want string
		ok            bool
	}{
		{"/home/u", "../../etc/passwd", "/etc/passwd", true},
		{"/home/u", "a//b/./c/", "/home/u/a/b/c", true},
		{"/home/u", "", "/home/u", true},
		{"/home/u", "/../..//x", "/x", true},
		{"", "rel", "", false},
		{"", "/abs/../y", "/y", true},
	}
	for _, tc := range tests {
		got, ok := absPath(tc.cwd, tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("absPath(%q, %q): got %q %v, want %q %v", tc.cwd, tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
