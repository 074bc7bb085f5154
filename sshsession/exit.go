package sshsession

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ParseExitStatus parses the payload of "exit-status" (RFC 4254 §6.10), as
// a proxy receives it from its upstream server.
func ParseExitStatus(payload []byte) (uint32, error) {
	d := decoder{b: payload}
	status, ok := d.uint32()
	if !ok {
		return 0, &ParseError{Type: typeExitStatus, Err: errTruncated}
	}
	if !d.empty() {
		return 0, &ParseError{Type: typeExitStatus, Err: errTrailing}
	}
	return status, nil
}

// MarshalExitStatus encodes the payload of "exit-status" (RFC 4254 §6.10).
func MarshalExitStatus(status uint32) []byte {
	return binary.BigEndian.AppendUint32(make([]byte, 0, 4), status)
}

// ParseExitSignal parses the payload of "exit-signal" (RFC 4254 §6.10), as
// a proxy receives it from its upstream server.
func ParseExitSignal(payload []byte) (ExitSignal, error) {
	sig, err := parseExitSignal(payload)
	if err != nil {
		return ExitSignal{}, &ParseError{Type: typeExitSignal, Err: err}
	}
	return sig, nil
}

func parseExitSignal(b []byte) (ExitSignal, error) {
	d := decoder{b: b}
	name, ok := d.string()
	if !ok {
		return ExitSignal{}, fmt.Errorf("signal name: %w", errTruncated)
	}
	core, ok := d.boolean()
	if !ok {
		return ExitSignal{}, fmt.Errorf("core dumped: %w", errTruncated)
	}
	msg, ok := d.string()
	if !ok {
		return ExitSignal{}, fmt.Errorf("message: %w", errTruncated)
	}
	lang, ok := d.string()
	if !ok {
		return ExitSignal{}, fmt.Errorf("language tag: %w", errTruncated)
	}
	if !d.empty() {
		return ExitSignal{}, errTrailing
	}
	if err := checkSignalName(name); err != nil {
		return ExitSignal{}, err
	}
	if len(msg) > maxExitMessage {
		return ExitSignal{}, &limitError{"message", len(msg), maxExitMessage}
	}
	if len(lang) > maxLanguageTag {
		return ExitSignal{}, &limitError{"language tag", len(lang), maxLanguageTag}
	}
	if len(lang) > 0 && !printable(lang) {
		return ExitSignal{}, errors.New("language tag is not printable ASCII")
	}
	return ExitSignal{Signal: string(name), CoreDumped: core, Message: string(msg), Language: string(lang)}, nil
}

// Marshal encodes the payload of "exit-signal" (RFC 4254 §6.10).
func (e ExitSignal) Marshal() []byte {
	b := make([]byte, 0, 13+len(e.Signal)+len(e.Message)+len(e.Language))
	b = appendString(b, e.Signal)
	if e.CoreDumped {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = appendString(b, e.Message)
	return appendString(b, e.Language)
}
