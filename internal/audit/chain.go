package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Link is an event's place in the hash chain of the gateway that wrote it
// (the "chain" member of the event JSON, always its last member). Hash is
// the hex SHA-256 of the previous link's hash (32 zero bytes before the
// first event) followed by the event's JSON exactly as stored, with Hash
// empty: any change to the stored bytes breaks the chain. The store
// computes it in its single writer, in the order it stores the events,
// and persists the head so that the chain continues across restarts.
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

// linkSuffix is how the JSON of an event with its link and an empty hash
// ends: Chain is the last field of Event.
const linkSuffix = `"hash":""}}`

// link sets e.Chain to the link after prev in gateway's chain and returns
// the event's JSON as the store keeps it, and the new head.
func link(prev chainHead, gateway string, e *Event) ([]byte, chainHead, error) {
	e.Chain = &Link{Gateway: gateway, Seq: prev.seq + 1}
	blank, err := json.Marshal(e)
	if err != nil {
		return nil, chainHead{}, fmt.Errorf("audit: encode event: %w", err)
	}
	if !bytes.HasSuffix(blank, []byte(linkSuffix)) {
		return nil, chainHead{}, fmt.Errorf("audit: encoded event does not end with its link: %.40q", blank[max(0, len(blank)-40):])
	}
	sum := linkHash(prev, blank)
	e.Chain.Hash = hex.EncodeToString(sum[:])
	cut := len(blank) - len(`"}}`)
	data := make([]byte, 0, len(blank)+sha256.Size*2)
	data = append(append(append(data, blank[:cut]...), e.Chain.Hash...), blank[cut:]...)
	return data, chainHead{seq: prev.seq + 1, hash: sum}, nil
}

// linkHash is SHA-256(prev.hash || blank), blank being the event's JSON
// with an empty hash.
func linkHash(prev chainHead, blank []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(prev.hash[:])
	h.Write(blank)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// blankHash returns stored event JSON with the hash of its link removed
// (what link hashed) and that hash, or false when data does not end with a
// link as link writes it.
func blankHash(data []byte) (blank []byte, hash string, ok bool) {
	const hexLen = sha256.Size * 2
	tail := len(`"}}`)
	head := len(linkSuffix) - tail // `"hash":"`
	n := len(data)
	if n < head+hexLen+tail || string(data[n-tail:]) != `"}}` || string(data[n-tail-hexLen-head:n-tail-hexLen]) != linkSuffix[:head] {
		return nil, "", false
	}
	blank = append(append(make([]byte, 0, n-hexLen), data[:n-tail-hexLen]...), data[n-tail:]...)
	return blank, string(data[n-tail-hexLen : n-tail]), true
}
