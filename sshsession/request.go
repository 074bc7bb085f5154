package sshsession

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Request names on the wire (RFC 4254 §6.2-§6.9, RFC 4335 §3).
const (
	typePty          = "pty-req"
	typeEnv          = "env"
	typeShell        = "shell"
	typeExec         = "exec"
	typeSubsystem    = "subsystem"
	typeWindowChange = "window-change"
	typeSignal       = "signal"
	typeBreak        = "break"
	typeExitStatus   = "exit-status"
	typeExitSignal   = "exit-signal"
)

// ttyOpEnd ends the encoded terminal modes (RFC 4254 §8).
const ttyOpEnd = 0

// firstUndefinedOpcode starts the opcode range 160-255 that RFC 4254 §8
// leaves undefined: their argument format is unknown, so they cannot be
// parsed and are refused.
const firstUndefinedOpcode = 160

// maxSignalName bounds a signal name. RFC 4254 §6.9 and §6.10 define names
// of at most four letters and "name@domain" extensions; 64 bytes is the
// same bound as an SSH algorithm name (RFC 4251 §6).
const maxSignalName = 64

// maxLanguageTag bounds the language tag of exit-signal (RFC 4254 §6.10,
// an RFC 3066 tag, which is far shorter in practice).
const maxLanguageTag = 64

// maxExitMessage bounds the message of exit-signal; it matches the default
// env value bound, a generous size for one human-readable line.
const maxExitMessage = 32 << 10

// DefaultCloseTimeout is how long closing waits for output still being
// written to a peer that does not read, when Config.CloseTimeout is zero.
const DefaultCloseTimeout = 5 * time.Second

// DefaultLimits returns the limits used for every zero field of
// Config.Limits: terminal name 256 bytes, 256 terminal modes, env name 256
// bytes, env value 32 KiB, exec command 256 KiB (x/crypto's largest packet),
// subsystem name 64 bytes, 64 pending requests.
func DefaultLimits() Limits {
	return Limits{
		MaxTermLen:    256,
		MaxModes:      256,
		MaxEnvName:    256,
		MaxEnvValue:   32 << 10,
		MaxCommandLen: 256 << 10,
		MaxSubsystem:  64,
		MaxPending:    64,
	}
}

// withDefaults returns l with every zero (or negative) field replaced by
// its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	pick := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	return Limits{
		MaxTermLen:    pick(l.MaxTermLen, d.MaxTermLen),
		MaxModes:      pick(l.MaxModes, d.MaxModes),
		MaxEnvName:    pick(l.MaxEnvName, d.MaxEnvName),
		MaxEnvValue:   pick(l.MaxEnvValue, d.MaxEnvValue),
		MaxCommandLen: pick(l.MaxCommandLen, d.MaxCommandLen),
		MaxSubsystem:  pick(l.MaxSubsystem, d.MaxSubsystem),
		MaxPending:    pick(l.MaxPending, d.MaxPending),
	}
}

// ErrLimit is matched by errors.Is for every *ParseError caused by a bound
// of Limits (or of the exit-signal fields) rather than by bad encoding.
var ErrLimit = errors.New("sshsession: request over limit")

// ParseError reports a request payload that is malformed or over a limit.
type ParseError struct {
	Type string // request name, e.g. "pty-req"
	Err  error  // what is wrong
}

func (e *ParseError) Error() string {
	return "sshsession: malformed " + e.Type + ": " + e.Err.Error()
}

func (e *ParseError) Unwrap() error { return e.Err }

// UnknownRequestError reports a request type ParseRequest does not know.
type UnknownRequestError struct {
	Type string
}

func (e *UnknownRequestError) Error() string {
	return "sshsession: unknown request type " + strconv.Quote(e.Type)
}

// limitError is a field over its bound; it matches ErrLimit.
type limitError struct {
	field    string
	len, max int
}

func (e *limitError) Error() string {
	return fmt.Sprintf("%s is %d bytes, over the limit of %d", e.field, e.len, e.max)
}

func (e *limitError) Is(target error) bool { return target == ErrLimit }

var (
	errTruncated = errors.New("truncated")
	errTrailing  = errors.New("trailing bytes after the payload")
)

// ParseRequest parses the payload of a channel request of type typ sent
// by a client on a session channel. It checks encoding strictly (no
// truncation, no trailing bytes) and the bounds of lim, whose zero fields
// take DefaultLimits. Malformed payloads return a *ParseError; a type it
// does not know returns an *UnknownRequestError.
func ParseRequest(typ string, payload []byte, lim Limits) (Request, error) {
	lim = lim.withDefaults()
	var (
		r   Request
		err error
	)
	switch typ {
	case typePty:
		r, err = parsePty(payload, lim)
	case typeEnv:
		r, err = parseEnv(payload, lim)
	case typeShell:
		if len(payload) != 0 {
			err = errTrailing
		}
		r = &ShellRequest{}
	case typeExec:
		r, err = parseExec(payload, lim)
	case typeSubsystem:
		r, err = parseSubsystem(payload, lim)
	case typeWindowChange:
		r, err = parseWindowChange(payload)
	case typeSignal:
		r, err = parseSignal(payload)
	case typeBreak:
		r, err = parseBreak(payload)
	default:
		return nil, &UnknownRequestError{Type: typ}
	}
	if err != nil {
		return nil, &ParseError{Type: typ, Err: err}
	}
	return r, nil
}

func parsePty(b []byte, lim Limits) (*PtyRequest, error) {
	d := decoder{b: b}
	term, ok := d.string()
	if !ok {
		return nil, fmt.Errorf("terminal name: %w", errTruncated)
	}
	var p PtyRequest
	for _, f := range []*uint32{&p.Columns, &p.Rows, &p.WidthPixels, &p.HeightPixels} {
		if *f, ok = d.uint32(); !ok {
			return nil, fmt.Errorf("dimensions: %w", errTruncated)
		}
	}
	modes, ok := d.string()
	if !ok {
		return nil, fmt.Errorf("terminal modes: %w", errTruncated)
	}
	if !d.empty() {
		return nil, errTrailing
	}
	if len(term) > lim.MaxTermLen {
		return nil, &limitError{"terminal name", len(term), lim.MaxTermLen}
	}
	if !printable(term) {
		return nil, errors.New("terminal name is not printable ASCII")
	}
	p.Term = string(term)
	var err error
	if p.Modes, err = parseModes(modes, lim.MaxModes); err != nil {
		return nil, err
	}
	return &p, nil
}

// parseModes decodes RFC 4254 §8 encoded terminal modes. TTY_OP_END must
// be the last byte when present; a string that simply ends is accepted as
// OpenSSH does. Opcodes 160-255 have no defined argument and are refused.
func parseModes(b []byte, max int) ([]Mode, error) {
	var modes []Mode
	for i := 0; i < len(b); {
		op := b[i]
		i++
		if op == ttyOpEnd {
			if i != len(b) {
				return nil, fmt.Errorf("terminal modes: %d bytes after TTY_OP_END", len(b)-i)
			}
			break
		}
		if op >= firstUndefinedOpcode {
			return nil, fmt.Errorf("terminal modes: opcode %d is undefined", op)
		}
		if len(b)-i < 4 {
			return nil, fmt.Errorf("terminal modes: opcode %d value: %w", op, errTruncated)
		}
		if len(modes) == max {
			return nil, fmt.Errorf("terminal modes: more than %d: %w", max, ErrLimit)
		}
		modes = append(modes, Mode{Opcode: op, Value: binary.BigEndian.Uint32(b[i:])})
		i += 4
	}
	return modes, nil
}

func parseEnv(b []byte, lim Limits) (*EnvRequest, error) {
	d := decoder{b: b}
	name, ok := d.string()
	if !ok {
		return nil, fmt.Errorf("name: %w", errTruncated)
	}
	value, ok := d.string()
	if !ok {
		return nil, fmt.Errorf("value: %w", errTruncated)
	}
	if !d.empty() {
		return nil, errTrailing
	}
	switch {
	case len(name) > lim.MaxEnvName:
		return nil, &limitError{"name", len(name), lim.MaxEnvName}
	case len(value) > lim.MaxEnvValue:
		return nil, &limitError{"value", len(value), lim.MaxEnvValue}
	case len(name) == 0:
		return nil, errors.New("empty name")
	case !printable(name):
		return nil, errors.New("name is not printable ASCII")
	case bytes.IndexByte(name, '=') >= 0:
		return nil, errors.New("name contains '='")
	case bytes.IndexByte(value, 0) >= 0:
		return nil, errors.New("value contains NUL")
	}
	return &EnvRequest{Name: string(name), Value: string(value)}, nil
}

func parseExec(b []byte, lim Limits) (*ExecRequest, error) {
	cmd, err := onlyString(b, "command")
	if err != nil {
		return nil, err
	}
	if len(cmd) > lim.MaxCommandLen {
		return nil, &limitError{"command", len(cmd), lim.MaxCommandLen}
	}
	if bytes.IndexByte(cmd, 0) >= 0 {
		return nil, errors.New("command contains NUL")
	}
	return &ExecRequest{Command: string(cmd)}, nil
}

func parseSubsystem(b []byte, lim Limits) (*SubsystemRequest, error) {
	name, err := onlyString(b, "name")
	if err != nil {
		return nil, err
	}
	if len(name) > lim.MaxSubsystem {
		return nil, &limitError{"name", len(name), lim.MaxSubsystem}
	}
	if len(name) == 0 || !printable(name) {
		return nil, errors.New("name is empty or not printable ASCII")
	}
	return &SubsystemRequest{Name: string(name)}, nil
}

// onlyString decodes a payload that is exactly one SSH string (RFC 4251
// §5), the field named what: exec, subsystem and signal requests.
func onlyString(b []byte, what string) ([]byte, error) {
	d := decoder{b: b}
	v, ok := d.string()
	if !ok {
		return nil, fmt.Errorf("%s: %w", what, errTruncated)
	}
	if !d.empty() {
		return nil, errTrailing
	}
	return v, nil
}

func parseWindowChange(b []byte) (*WindowChange, error) {
	d := decoder{b: b}
	var w WindowChange
	for _, f := range []*uint32{&w.Columns, &w.Rows, &w.WidthPixels, &w.HeightPixels} {
		var ok bool
		if *f, ok = d.uint32(); !ok {
			return nil, fmt.Errorf("dimensions: %w", errTruncated)
		}
	}
	if !d.empty() {
		return nil, errTrailing
	}
	return &w, nil
}

func parseSignal(b []byte) (*SignalRequest, error) {
	name, err := onlyString(b, "name")
	if err != nil {
		return nil, err
	}
	if err := checkSignalName(name); err != nil {
		return nil, err
	}
	return &SignalRequest{Name: string(name)}, nil
}

func checkSignalName(name []byte) error {
	if len(name) > maxSignalName {
		return &limitError{"signal name", len(name), maxSignalName}
	}
	if len(name) == 0 || !printable(name) {
		return errors.New("signal name is empty or not printable ASCII")
	}
	return nil
}

func parseBreak(b []byte) (*BreakRequest, error) {
	d := decoder{b: b}
	ms, ok := d.uint32()
	if !ok {
		return nil, fmt.Errorf("break length: %w", errTruncated)
	}
	if !d.empty() {
		return nil, errTrailing
	}
	return &BreakRequest{Millis: ms}, nil
}

// Type returns "pty-req".
func (*PtyRequest) Type() string { return typePty }

// Marshal encodes the request (RFC 4254 §6.2), terminal modes in order
// followed by TTY_OP_END.
func (p *PtyRequest) Marshal() []byte {
	b := make([]byte, 0, 4+len(p.Term)+16+4+5*len(p.Modes)+1)
	b = appendString(b, p.Term)
	b = appendUint32s(b, p.Columns, p.Rows, p.WidthPixels, p.HeightPixels)
	b = binary.BigEndian.AppendUint32(b, uint32(5*len(p.Modes)+1))
	for _, m := range p.Modes {
		b = append(b, m.Opcode)
		b = binary.BigEndian.AppendUint32(b, m.Value)
	}
	return append(b, ttyOpEnd)
}

// Type returns "env".
func (*EnvRequest) Type() string { return typeEnv }

// Marshal encodes the request (RFC 4254 §6.4).
func (e *EnvRequest) Marshal() []byte {
	b := make([]byte, 0, 8+len(e.Name)+len(e.Value))
	return appendString(appendString(b, e.Name), e.Value)
}

// Type returns "shell".
func (*ShellRequest) Type() string { return typeShell }

// Marshal returns the empty payload of "shell" (RFC 4254 §6.5).
func (*ShellRequest) Marshal() []byte { return []byte{} }

// Type returns "exec".
func (*ExecRequest) Type() string { return typeExec }

// Marshal encodes the request (RFC 4254 §6.5).
func (e *ExecRequest) Marshal() []byte {
	return appendString(make([]byte, 0, 4+len(e.Command)), e.Command)
}

// Type returns "subsystem".
func (*SubsystemRequest) Type() string { return typeSubsystem }

// Marshal encodes the request (RFC 4254 §6.5).
func (s *SubsystemRequest) Marshal() []byte {
	return appendString(make([]byte, 0, 4+len(s.Name)), s.Name)
}

// Type returns "window-change".
func (*WindowChange) Type() string { return typeWindowChange }

// Marshal encodes the request (RFC 4254 §6.7).
func (w *WindowChange) Marshal() []byte {
	return appendUint32s(make([]byte, 0, 16), w.Columns, w.Rows, w.WidthPixels, w.HeightPixels)
}

// Type returns "signal".
func (*SignalRequest) Type() string { return typeSignal }

// Marshal encodes the request (RFC 4254 §6.9).
func (s *SignalRequest) Marshal() []byte {
	return appendString(make([]byte, 0, 4+len(s.Name)), s.Name)
}

// Type returns "break".
func (*BreakRequest) Type() string { return typeBreak }

// Marshal encodes the request (RFC 4335 §3).
func (b *BreakRequest) Marshal() []byte {
	return binary.BigEndian.AppendUint32(make([]byte, 0, 4), b.Millis)
}

// Interface guards.
var (
	_ Request = (*PtyRequest)(nil)
	_ Request = (*EnvRequest)(nil)
	_ Request = (*ShellRequest)(nil)
	_ Request = (*ExecRequest)(nil)
	_ Request = (*SubsystemRequest)(nil)
	_ Request = (*WindowChange)(nil)
	_ Request = (*SignalRequest)(nil)
	_ Request = (*BreakRequest)(nil)
)

// decoder reads RFC 4251 §5 data types from a payload without copying.
type decoder struct{ b []byte }

func (d *decoder) empty() bool { return len(d.b) == 0 }

func (d *decoder) uint32() (uint32, bool) {
	if len(d.b) < 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v, true
}

func (d *decoder) boolean() (bool, bool) {
	if len(d.b) < 1 {
		return false, false
	}
	v := d.b[0] != 0 // RFC 4251 §5: any non-zero value is TRUE
	d.b = d.b[1:]
	return v, true
}

func (d *decoder) string() ([]byte, bool) {
	n, ok := d.uint32()
	if !ok || uint64(n) > uint64(len(d.b)) {
		return nil, false
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s, true
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendUint32s(b []byte, vs ...uint32) []byte {
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// printable reports whether b holds only printable ASCII without spaces.
func printable(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
