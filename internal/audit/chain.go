package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Link is an event's place in the hash chain of the gateway that wrote it
// (the "chain" member of the event JSON). Hash is the hex SHA-256 of the
// previous link's hash (32 zero bytes before the first event) followed by
// the event's canonical form: its JSON with Hash empty, numbers as written
// and object members in encoding/json's order (struct fields in order,
// map keys sorted). The store computes it in its single writer, in the
// order it stores the events, and persists the head so that the chain
// continues across restarts.
type Link struct {
	Gateway string `json:"gateway"`
	Seq     uint64 `json:"seq"`
	Hash    string `json:"hash"`
}

// chainHead is the last link of a gateway's chain; the zero value is the
// head before the first event.
type chainHead struct {
	seq  uint64
	hash [sha256.Size]byte
}

func (h chainHead) hex() string {
	if h.seq == 0 {
		return ""
	}
	return hex.EncodeToString(h.hash[:])
}

// headOf parses a stored head (seq and hex hash).
func headOf(seq uint64, hexHash string) (chainHead, error) {
	h := chainHead{seq: seq}
	if seq == 0 {
		return h, nil
	}
	b, err := hex.DecodeString(hexHash)
	if err != nil || len(b) != sha256.Size {
		return chainHead{}, fmt.Errorf("audit: stored chain head %d: malformed hash %q", seq, hexHash)
	}
	copy(h.hash[:], b)
	return h, nil
}

// link sets e.Chain to the link after prev in gateway's chain and returns
// the new head.
func link(prev chainHead, gateway string, e *Event) (chainHead, error) {
	e.Chain = &Link{Gateway: gateway, Seq: prev.seq + 1}
	sum, err := linkHash(prev, *e)
	if err != nil {
		return chainHead{}, err
	}
	e.Chain.Hash = hex.EncodeToString(sum[:])
	return chainHead{seq: prev.seq + 1, hash: sum}, nil
}

// linkHash is SHA-256(prev.hash || canonical(e)), e.Chain.Hash ignored.
func linkHash(prev chainHead, e Event) ([sha256.Size]byte, error) {
	c, err := canonical(e)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	h := sha256.New()
	h.Write(prev.hash[:])
	h.Write(c)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum, nil
}

// canonical is e's JSON with Chain.Hash empty, normalised by one decoding
// that keeps numbers as written (json.Number) and one encoding: so the form
// computed at write time from Go values (ints, structs in Detail) equals
// the form computed by a verifier from the stored JSON.
func canonical(e Event) ([]byte, error) {
	if e.Chain != nil {
		l := *e.Chain
		l.Hash = ""
		e.Chain = &l
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("audit: encode event: %w", err)
	}
	n, err := decodeExact(b)
	if err != nil {
		return nil, err
	}
	if n.Chain != nil {
		n.Chain.Hash = ""
	}
	b, err = json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("audit: encode event: %w", err)
	}
	return b, nil
}

// decodeExact decodes a stored event keeping its numbers as written.
func decodeExact(data []byte) (Event, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var e Event
	if err := d.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("audit: decode stored event: %w", err)
	}
	return e, nil
}
