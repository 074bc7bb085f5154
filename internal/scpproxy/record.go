package scpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// maxLine is the longest record or status line accepted, newline
// included: the buffers of OpenSSH's sink and response() (scp.c, 2048
// bytes).
const maxLine = 2048

// ErrProtocol reports bytes that are not the scp protocol.
var ErrProtocol = errors.New("scpproxy: protocol error")

// Record types (scp.c, source and sink), and the two error "records" a
// source sends in place of one.
const (
	recTimes = 'T'
	recFile  = 'C'
	recDir   = 'D'
	recEnd   = 'E'
	recError = 1
	recFatal = 2
)

// record is one line from a source.
type record struct {
	typ byte
	// mode and name of C and D; size of C.
	mode uint32
	size int64
	name string
	// mtime and atime of T, as seconds and microseconds.
	mtime, mtimeUsec, atime, atimeUsec uint64
	// msg is the message of an error line, newline excluded.
	msg string
}

// readLine reads a line, newline included, of at most maxLine bytes. A
// clean EOF before it starts is io.EOF.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLine)
		}
		switch {
		case err == nil:
			return line, nil
		case err == bufio.ErrBufferFull:
		case err == io.EOF && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// parseRecord parses one line from a source, newline included. It is
// stricter than OpenSSH's sink, which is lenient about what OpenSSH's
// source never sends: it accepts exactly the records source() and
// rsource() write, so that what is checked is what the sink acts on.
func parseRecord(line []byte) (record, error) {
	if len(line) < 2 || line[len(line)-1] != '\n' {
		return record{}, fmt.Errorf("%w: not a line", ErrProtocol)
	}
	body := line[1 : len(line)-1]
	rec := record{typ: line[0]}
	if rec.typ == recError || rec.typ == recFatal {
		rec.msg = string(body)
		return rec, nil
	}
	if bytes.IndexByte(body, 0) >= 0 || bytes.IndexByte(body, '\n') >= 0 {
		return rec, fmt.Errorf("%w: NUL or newline in a record", ErrProtocol)
	}
	f := fields{b: body}
	switch rec.typ {
	case recTimes:
		// "T%llu 0 %llu 0" (scp.c, do_times); the sink accepts
		// microseconds up to 999999.
		rec.mtime = f.number(' ', math.MaxInt64)
		rec.mtimeUsec = f.number(' ', 999999)
		rec.atime = f.number(' ', math.MaxInt64)
		rec.atimeUsec = f.number(0, 999999)
		return rec, f.end()
	case recFile, recDir:
		// "C%04o %lld %s" and "D%04o %d %.1024s" (scp.c, source and
		// rsource): four octal digits, as the sink reads them.
		rec.mode = f.mode()
		size := f.number(' ', math.MaxInt64)
		rec.size = int64(size)
		rec.name = string(f.b)
		f.b = nil
		if err := f.end(); err != nil {
			return rec, err
		}
		if rec.typ == recDir && rec.size != 0 {
			return rec, fmt.Errorf("%w: directory of size %d", ErrProtocol, rec.size)
		}
		// The sink's own check (scp.c, sink: "unexpected filename").
		if rec.name == "" || rec.name == ".." || bytes.IndexByte([]byte(rec.name), '/') >= 0 {
			return rec, fmt.Errorf("%w: file name %q", ErrProtocol, rec.name)
		}
		return rec, nil
	case recEnd:
		if len(body) != 0 {
			return rec, fmt.Errorf("%w: E record with %q", ErrProtocol, body)
		}
		return rec, nil
	}
	return rec, fmt.Errorf("%w: record type %q", ErrProtocol, rec.typ)
}

// marshal encodes a record as a source writes it.
func (r record) marshal() []byte {
	switch r.typ {
	case recTimes:
		return fmt.Appendf(nil, "T%d %d %d %d\n", r.mtime, r.mtimeUsec, r.atime, r.atimeUsec)
	case recFile, recDir:
		return fmt.Appendf(nil, "%c%04o %d %s\n", r.typ, r.mode, r.size, r.name)
	case recEnd:
		return []byte("E\n")
	}
	return append(append([]byte{r.typ}, r.msg...), '\n')
}

// fields reads the parts of a record. The first error sticks.
type fields struct {
	b   []byte
	err error
}

func (f *fields) fail(what string) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: bad %s", ErrProtocol, what)
	}
	f.b = nil
}

// number reads a decimal number without sign or leading zeros, at most
// max, followed by sep (0: by the end).
func (f *fields) number(sep byte, max uint64) uint64 {
	i := 0
	for i < len(f.b) && f.b[i] >= '0' && f.b[i] <= '9' {
		i++
	}
	if i == 0 || (i > 1 && f.b[0] == '0') {
		f.fail("number")
		return 0
	}
	v, err := strconv.ParseUint(string(f.b[:i]), 10, 64)
	if err != nil || v > max {
		f.fail("number")
		return 0
	}
	f.b = f.b[i:]
	switch {
	case sep == 0:
	case len(f.b) > 0 && f.b[0] == sep:
		f.b = f.b[1:]
	default:
		f.fail("separator")
	}
	return v
}

// mode reads four octal digits and a space.
func (f *fields) mode() uint32 {
	if len(f.b) < 5 || f.b[4] != ' ' {
		f.fail("mode")
		return 0
	}
	var m uint32
	for _, c := range f.b[:4] {
		if c < '0' || c > '7' {
			f.fail("mode")
			return 0
		}
		m = m<<3 | uint32(c-'0')
	}
	f.b = f.b[5:]
	return m
}

func (f *fields) end() error {
	if f.err == nil && len(f.b) != 0 {
		f.err = fmt.Errorf("%w: trailing %q", ErrProtocol, f.b)
	}
	return f.err
}

// readStatus reads a sink's answer: a 0 byte, or any other byte and the
// rest of its line, as response() in scp.c reads it. ok reports the 0
// byte; status is what to forward.
func readStatus(r *bufio.Reader) (status []byte, ok bool, err error) {
	b, err := r.ReadByte()
	if err != nil {
		return nil, false, err
	}
	if b == 0 {
		return []byte{0}, true, nil
	}
	rest, err := readLine(r)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, false, err
	}
	if len(rest) >= maxLine {
		return nil, false, fmt.Errorf("%w: status line longer than %d bytes", ErrProtocol, maxLine)
	}
	return append([]byte{b}, rest...), false, nil
}

// errorStatus is a status line of the proxy's own.
func errorStatus(msg string) []byte {
	return append(append([]byte{recError}, msg...), '\n')
}
