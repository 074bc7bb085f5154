package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Verification is what Verify found.
type Verification struct {
	Events     int // linked events checked
	Unlinked   int // events stored before the store linked events
	Torn       int // lines of a JSON lines file that are not events (torn writes)
	Recordings int // recording files hashed again
	// Heads are the last links of each gateway's chain, by gateway name:
	// what an operator keeps elsewhere to detect a store rewritten whole.
	Heads []Link
	// Break is the first break found, or nil when the store verified.
	Break *Break
}

// Break says where and how a store stopped verifying.
type Break struct {
	Where   string // "row 42", "line 17", "chain_heads"
	Event   *Event // the event at the break, when it could be decoded
	Problem string
}

func (b *Break) String() string {
	s := b.Where
	if e := b.Event; e != nil {
		s += " (" + e.Type
		if e.SessionID != "" {
			s += " of " + e.SessionID
		}
		if e.Chain != nil {
			s += fmt.Sprintf(", gateway %s seq %d", e.Chain.Gateway, e.Chain.Seq)
		}
		s += ")"
	}
	return s + ": " + b.Problem
}

// rawEvent is one stored event as the store keeps it, for Verify.
type rawEvent struct {
	where string
	data  []byte
	cols  *row // the indexed columns (SQL stores), without data
}

// rawStore is implemented by every store: the events in the order they
// were stored, and the chain heads it keeps apart from them (nil when the
// events are the only record).
type rawStore interface {
	scanRaw(ctx context.Context, fn func(rawEvent) error) error
	storedHeads(ctx context.Context) (map[string]chainHead, error)
}

// Verify checks every hash chain of st (one per gateway name) in stored
// order, the indexed columns of the SQL stores against each event's JSON,
// the chain heads the store keeps against the last events, and the
// recordings listed by session.end events (DetailRecordings) against
// their SHA-256. If expect is not nil, the chain must still hold that link
// (one that Verify reported earlier and the operator kept). It stops at
// the first break; an error means the store could not be read.
func Verify(ctx context.Context, st Store, expect *Link) (*Verification, error) {
	rs, ok := st.(rawStore)
	if !ok {
		return nil, fmt.Errorf("audit: verify: %T cannot be read in stored order", st)
	}
	// The heads the store keeps are read first: events written while
	// Verify runs (the gateway goes on) come after them.
	stored, err := rs.storedHeads(ctx)
	if err != nil {
		return nil, err
	}
	v := &Verification{}
	heads := map[string]chainHead{}
	expectSeen := false
	storedSeen := map[string]bool{}
	errBreak := errors.New("break")
	fail := func(where string, e *Event, format string, args ...any) error {
		v.Break = &Break{Where: where, Event: e, Problem: fmt.Sprintf(format, args...)}
		return errBreak
	}
	err = rs.scanRaw(ctx, func(r rawEvent) error {
		var e Event
		if err := json.Unmarshal(r.data, &e); err != nil {
			if r.cols == nil { // a torn line of a JSON lines file
				v.Torn++
				return nil
			}
			return fail(r.where, nil, "not an event: %v", err)
		}
		if e.Chain == nil {
			if len(heads) > 0 {
				return fail(r.where, &e, "event without a chain link after linked events (inserted, or its link removed)")
			}
			v.Unlinked++
			return nil
		}
		gw := e.Chain.Gateway
		prev := heads[gw]
		switch seq := e.Chain.Seq; {
		case seq > prev.seq+1:
			return fail(r.where, &e, "seq %d follows seq %d of gateway %s: %d events missing (deleted)", seq, prev.seq, gw, seq-prev.seq-1)
		case seq <= prev.seq:
			return fail(r.where, &e, "seq %d does not follow seq %d of gateway %s (an event inserted, duplicated or moved)", seq, prev.seq, gw)
		}
		blank, linked, ok := blankHash(r.data)
		if !ok || linked != e.Chain.Hash {
			return fail(r.where, &e, "the link is not the last member of the event's JSON (changed)")
		}
		sum := linkHash(prev, blank)
		if got := hex.EncodeToString(sum[:]); got != linked {
			return fail(r.where, &e, "hash %s, want %s: the event, or the link before it, was changed", linked, got)
		}
		if r.cols != nil {
			if col := columnsDiffer(*r.cols, e); col != "" {
				return fail(r.where, &e, "column %s differs from the event's JSON (changed)", col)
			}
		}
		if expect != nil && gw == expect.Gateway && e.Chain.Seq == expect.Seq {
			if e.Chain.Hash != expect.Hash {
				return fail(r.where, &e, "hash %s, want the kept head %s: the chain was rewritten", e.Chain.Hash, expect.Hash)
			}
			expectSeen = true
		}
		if h, ok := stored[gw]; ok && h.seq == e.Chain.Seq {
			if h.hash != sum {
				return fail(r.where, &e, "hash %s, want the head in chain_heads %s (the chain was rewritten)", e.Chain.Hash, h.hex())
			}
			storedSeen[gw] = true
		}
		heads[gw] = chainHead{seq: e.Chain.Seq, hash: sum}
		v.Events++
		if e.Type == TypeSessionEnd {
			if problem := v.checkRecordings(e.Detail[DetailRecordings]); problem != "" {
				return fail(r.where, &e, "%s", problem)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBreak) {
		return nil, err
	}
	for gw, h := range heads {
		v.Heads = append(v.Heads, Link{Gateway: gw, Seq: h.seq, Hash: h.hex()})
	}
	slices.SortFunc(v.Heads, func(a, b Link) int { return strings.Compare(a.Gateway, b.Gateway) })
	if v.Break != nil {
		return v, nil
	}
	if expect != nil && !expectSeen {
		_ = fail("end of store", nil, "the kept head %s seq %d is not in the chain (%d events of %s left): the chain was truncated or rewritten",
			expect.Gateway, expect.Seq, heads[expect.Gateway].seq, expect.Gateway)
		return v, nil
	}
	for gw, h := range stored {
		if h.seq > 0 && !storedSeen[gw] {
			_ = fail("chain_heads", nil, "the head of gateway %s is seq %d but its last event has seq %d (events at the end deleted, or the head changed)", gw, h.seq, heads[gw].seq)
			return v, nil
		}
	}
	return v, nil
}

// columnsDiffer names the first indexed column of r that does not hold
// what e's JSON says, or "".
func columnsDiffer(r row, e Event) string {
	switch {
	case r.timeNS != timeKey(e.Time):
		return "time_ns"
	case r.typ != indexKey(e.Type):
		return "type"
	case r.sessionID != indexKey(e.SessionID):
		return "session_id"
	case r.user != indexKey(e.User):
		return "user_name"
	case r.verdict != indexKey(string(e.Verdict)):
		return "verdict"
	}
	return ""
}

// checkRecordings hashes each recording a session.end lists and returns
// what is wrong, or "".
func (v *Verification) checkRecordings(list any) string {
	if list == nil {
		return ""
	}
	items, ok := list.([]any)
	if !ok {
		return fmt.Sprintf("detail %q is not a list", DetailRecordings)
	}
	for _, it := range items {
		m, _ := it.(map[string]any)
		path, _ := m["path"].(string)
		want, _ := m["sha256"].(string)
		if path == "" || want == "" {
			return fmt.Sprintf("detail %q holds %v, want {\"path\": ..., \"sha256\": ...}", DetailRecordings, it)
		}
		got, err := fileSHA256(path)
		if err != nil {
			return fmt.Sprintf("recording %s: %v", path, err)
		}
		if got != want {
			return fmt.Sprintf("recording %s has SHA-256 %s, want %s (modified)", path, got, want)
		}
		v.Recordings++
	}
	return ""
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
