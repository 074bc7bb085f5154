package sftpproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// maxPacket is the largest SFTP packet accepted in either direction, not
// counting its length field: OpenSSH sftp-server's SFTP_MAX_MSG_LENGTH
// (256 KiB, sftp-common.h). OpenSSH's client never sends more.
const maxPacket = 256 << 10

// protocolVersion is the SFTP version spoken: draft-ietf-secsh-filexfer-02,
// the one OpenSSH implements.
const protocolVersion = 3

// Packet types (draft-ietf-secsh-filexfer-02 §3).
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpOpen          = 3
	fxpClose         = 4
	fxpRead          = 5
	fxpWrite         = 6
	fxpLstat         = 7
	fxpFstat         = 8
	fxpSetstat       = 9
	fxpFsetstat      = 10
	fxpOpendir       = 11
	fxpReaddir       = 12
	fxpRemove        = 13
	fxpMkdir         = 14
	fxpRmdir         = 15
	fxpRealpath      = 16
	fxpStat          = 17
	fxpRename        = 18
	fxpReadlink      = 19
	fxpSymlink       = 20
	fxpStatus        = 101
	fxpHandle        = 102
	fxpData          = 103
	fxpName          = 104
	fxpAttrs         = 105
	fxpExtended      = 200
	fxpExtendedReply = 201
)

// Status codes (draft-ietf-secsh-filexfer-02 §7).
const (
	fxOK               = 0
	fxPermissionDenied = 3
	fxBadMessage       = 5
	fxOpUnsupported    = 8
)

// Open flags (draft-ietf-secsh-filexfer-02 §6.3).
const (
	fxfRead   = 0x01
	fxfWrite  = 0x02
	fxfAppend = 0x04
	fxfCreat  = 0x08
	fxfTrunc  = 0x10
	fxfExcl   = 0x20
)

// Attribute flags (draft-ietf-secsh-filexfer-02 §5).
const (
	attrSize        = 0x00000001
	attrUIDGID      = 0x00000002
	attrPermissions = 0x00000004
	attrACModTime   = 0x00000008
	attrExtended    = 0x80000000
)

// Extensions the proxy understands: OpenSSH's (PROTOCOL.sftp) and the two
// from draft-ietf-secsh-filexfer-extensions that OpenSSH also implements.
const (
	extPosixRename = "posix-rename@openssh.com"
	extStatvfs     = "statvfs@openssh.com"
	extFstatvfs    = "fstatvfs@openssh.com"
	extHardlink    = "hardlink@openssh.com"
	extFsync       = "fsync@openssh.com"
	extLsetstat    = "lsetstat@openssh.com"
	extLimits      = "limits@openssh.com"
	extExpandPath  = "expand-path@openssh.com"
	extCopyData    = "copy-data"
	extHomeDir     = "home-directory"
	extUsersGroups = "users-groups-by-id@openssh.com"
)

// ErrMalformed reports bytes that are not a valid SFTP packet.
var ErrMalformed = errors.New("sftpproxy: malformed packet")

// ErrTooLarge reports a packet longer than the 256 KiB maximum.
var ErrTooLarge = errors.New("sftpproxy: packet too large")

// decoder reads SFTP's wire types (draft-ietf-secsh-filexfer-02 §3, the
// SSH types of RFC 4251 §5). The first error sticks; later reads return
// zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: short %s", ErrMalformed, what)
	}
	d.b = nil
}

func (d *decoder) u8() byte {
	if len(d.b) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u32() uint32 {
	if len(d.b) < 4 {
		d.fail("uint32")
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail("uint64")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.b)) {
		d.fail("string")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

// path reads a file name. OpenSSH's sftp-server passes names to the C
// library, which stops at a NUL: a name with one would be checked as one
// path and used as another, so it is malformed.
func (d *decoder) path() string {
	s := d.str()
	if strings.IndexByte(s, 0) >= 0 && d.err == nil {
		d.err = fmt.Errorf("%w: NUL in a file name", ErrMalformed)
	}
	return s
}

// attrs reads ATTRS (draft-ietf-secsh-filexfer-02 §5).
func (d *decoder) attrs() attrs {
	a := attrs{flags: d.u32()}
	if a.flags&attrSize != 0 {
		a.size = d.u64()
	}
	if a.flags&attrUIDGID != 0 {
		d.u32()
		d.u32()
	}
	if a.flags&attrPermissions != 0 {
		d.u32()
	}
	if a.flags&attrACModTime != 0 {
		d.u32()
		d.u32()
	}
	if a.flags&attrExtended != 0 {
		n := d.u32()
		for i := uint32(0); i < n && d.err == nil; i++ {
			d.bytes()
			d.bytes()
		}
	}
	return a
}

// end reports the first error, or trailing bytes as malformed.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return d.err
}

// attrs is what the policy needs of ATTRS: which fields are set and the
// size.
type attrs struct {
	flags uint32
	size  uint64
}

// request is a client's request, decoded. Which fields are set depends on
// the type; data aliases the packet buffer.
type request struct {
	typ    byte
	id     uint32
	ext    string // extension name of an EXTENDED request
	path   string // first file name
	path2  string // second file name (rename, symlink, hardlink)
	handle string
	// handle2 is copy-data's destination handle.
	handle2 string
	pflags  uint32
	offset  uint64
	length  uint64
	// offset2 is copy-data's destination offset.
	offset2 uint64
	data    []byte
	attrs   attrs
}

// parseRequest decodes one client request. b is the packet without its
// length field. INIT and every response type are refused: they are not
// requests.
func parseRequest(b []byte) (request, error) {
	d := decoder{b: b}
	q := request{typ: d.u8()}
	if d.err != nil {
		return q, d.err
	}
	q.id = d.u32()
	switch q.typ {
	case fxpOpen:
		q.path = d.path()
		q.pflags = d.u32()
		q.attrs = d.attrs()
	case fxpClose, fxpFstat, fxpReaddir:
		q.handle = d.str()
	case fxpRead:
		q.handle = d.str()
		q.offset = d.u64()
		q.length = uint64(d.u32())
	case fxpWrite:
		q.handle = d.str()
		q.offset = d.u64()
		q.data = d.bytes()
		q.length = uint64(len(q.data))
	case fxpLstat, fxpStat, fxpOpendir, fxpRemove, fxpRmdir, fxpRealpath, fxpReadlink:
		q.path = d.path()
	case fxpSetstat, fxpMkdir:
		q.path = d.path()
		q.attrs = d.attrs()
	case fxpFsetstat:
		q.handle = d.str()
		q.attrs = d.attrs()
	case fxpRename, fxpSymlink:
		// SYMLINK's paths are in the client's order (see
		// clientSymlinkLinkFirst): path is the target when the client
		// follows OpenSSH, the link when it follows the draft.
		q.path = d.path()
		q.path2 = d.path()
	case fxpExtended:
		q.ext = d.str()
		if d.err == nil {
			parseExtended(&d, &q)
		}
	default:
		return q, fmt.Errorf("%w: request type %d", ErrMalformed, q.typ)
	}
	// Bytes after the fields are ignored, as OpenSSH's sftp-server ignores
	// them (process() in sftp-server.c consumes what its handler left of
	// the packet): pkg/sftp, and so rclone, pads some requests. The server
	// acts on the fields alone, so the proxy decides on the same.
	return q, d.err
}

// parseExtended decodes the fields of the extensions the proxy knows;
// an unknown extension's bytes are left alone (d.b emptied).
func parseExtended(d *decoder, q *request) {
	switch q.ext {
	case extPosixRename, extHardlink:
		q.path = d.path()
		q.path2 = d.path()
	case extStatvfs, extExpandPath:
		q.path = d.path()
	case extFstatvfs, extFsync:
		q.handle = d.str()
	case extLsetstat:
		q.path = d.path()
		q.attrs = d.attrs()
	case extLimits:
	case extCopyData:
		q.handle = d.str()
		q.offset = d.u64()
		q.length = d.u64()
		q.handle2 = d.str()
		q.offset2 = d.u64()
	case extHomeDir:
		q.path = d.str() // a user name
	case extUsersGroups:
		d.bytes()
		d.bytes()
	default:
		d.b = nil
	}
}

// response is what the proxy needs of a server's response.
type response struct {
	typ    byte
	id     uint32
	status uint32 // STATUS
	handle string // HANDLE
	data   []byte // DATA; aliases the packet buffer
	name   string // first file name of NAME
}

// parseResponse decodes one server response. b is the packet without its
// length field. Fields the proxy does not use (a STATUS message, the
// rest of a NAME list, ATTRS and EXTENDED_REPLY bodies) are not checked:
// they are forwarded as they are.
func parseResponse(b []byte) (response, error) {
	d := decoder{b: b}
	r := response{typ: d.u8()}
	r.id = d.u32()
	switch r.typ {
	case fxpStatus:
		r.status = d.u32()
	case fxpHandle:
		r.handle = d.str()
		if err := d.end(); err != nil {
			return r, err
		}
	case fxpData:
		r.data = d.bytes()
	case fxpName:
		if n := d.u32(); n > 0 {
			r.name = d.str()
		}
	case fxpAttrs, fxpExtendedReply:
	default:
		if d.err == nil {
			return r, fmt.Errorf("%w: response type %d", ErrMalformed, r.typ)
		}
	}
	return r, d.err
}

// version is an INIT or VERSION packet: the version and the extensions
// (name, data) offered.
type version struct {
	version uint32
	exts    [][2][]byte
}

// parseVersion decodes INIT (want fxpInit) or VERSION (fxpVersion).
func parseVersion(b []byte, want byte) (version, error) {
	d := decoder{b: b}
	if t := d.u8(); t != want && d.err == nil {
		return version{}, fmt.Errorf("%w: got packet type %d, want %d", ErrMalformed, t, want)
	}
	v := version{version: d.u32()}
	for len(d.b) > 0 && d.err == nil {
		name := d.bytes()
		data := d.bytes()
		v.exts = append(v.exts, [2][]byte{name, data})
	}
	return v, d.end()
}

// marshal encodes v as a packet of type t, length field included.
func (v version) marshal(t byte) []byte {
	b := make([]byte, 4, 64)
	b = append(b, t)
	b = appendU32(b, v.version)
	for _, e := range v.exts {
		b = appendBytes(b, e[0])
		b = appendBytes(b, e[1])
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// statusPacket encodes a STATUS response (draft-ietf-secsh-filexfer-02 §7).
func statusPacket(id, code uint32, msg string) []byte {
	b := make([]byte, 4, 4+1+4+4+4+len(msg)+4)
	b = append(b, fxpStatus)
	b = appendU32(b, id)
	b = appendU32(b, code)
	b = appendBytes(b, []byte(msg))
	b = appendBytes(b, nil) // language tag
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// twoPathPacket encodes a request of type t with two paths (SYMLINK).
func twoPathPacket(t byte, id uint32, p1, p2 string) []byte {
	b := make([]byte, 4, 4+1+4+4+len(p1)+4+len(p2))
	b = append(b, t)
	b = appendU32(b, id)
	b = appendBytes(b, []byte(p1))
	b = appendBytes(b, []byte(p2))
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// realpathPacket encodes REALPATH for p.
func realpathPacket(id uint32, p string) []byte {
	b := make([]byte, 4, 4+1+4+4+len(p))
	b = append(b, fxpRealpath)
	b = appendU32(b, id)
	b = appendBytes(b, []byte(p))
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func appendBytes(b, s []byte) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
