package fleet

import (
	"encoding/json"
	"testing"
)

// FuzzKillRequest: any NOTIFY payload is parsed or refused without a
// panic, and what is accepted has every field a node acts on and survives
// a round trip.
func FuzzKillRequest(f *testing.F) {
	for _, s := range []string{
		`{"schema":"public","id":"gw-1/ssh-in:4","gateway":"gw-1","operator":"ann"}`,
		`{"schema":"public","id":"gw-1/ssh-in:4","gateway":"gw-1"}`,
		`{"schema":"public","id":"","gateway":"gw-1"}`,
		`{"schema":"public","id":"x","gateway":"gw-1","extra":1}`,
		`{"schema":"public","id":"x","gateway":"gw-1"} {}`,
		`hello`, ``, `null`, `[]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		r, err := parseKillRequest(payload)
		if err != nil {
			return
		}
		if r.Schema == "" || r.ID == "" || r.Gateway == "" {
			t.Fatalf("accepted %q as %+v, want schema, id and gateway set", payload, r)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseKillRequest(string(b))
		if err != nil || again != r {
			t.Fatalf("round trip of %+v: got %+v, %v", r, again, err)
		}
	})
}

// TestParseKillRequest: the seeds a node must refuse are refused.
func TestParseKillRequest(t *testing.T) {
	for _, s := range []string{`hello`, ``, `null`, `{"schema":"s","id":"","gateway":"g"}`, `{"schema":"s","id":"i","gateway":"g","x":1}`, `{"schema":"s","id":"i","gateway":"g"} {}`} {
		if r, err := parseKillRequest(s); err == nil {
			t.Errorf("parseKillRequest(%q): got %+v, want an error", s, r)
		}
	}
	r, err := parseKillRequest(`{"schema":"s","id":"gw/ssh:1","gateway":"gw","operator":"ann"}`)
	if err != nil || r != (killRequest{Schema: "s", ID: "gw/ssh:1", Gateway: "gw", Operator: "ann"}) {
		t.Fatalf("got %+v, %v; want the request", r, err)
	}
}
