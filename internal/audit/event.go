package audit

import "time"

// Verdict is the outcome of a decision, Zorp's Z_ACCEPT / Z_REJECT.
type Verdict string

// Verdicts. An event that records no decision leaves Verdict empty.
const (
	Accept Verdict = "accept"
	Reject Verdict = "reject"
)

// Event is one audit record. The JSON field names are a contract (DESIGN.md):
// time, type, session_id, user, client_addr, client_zone, verdict, rule.
type Event struct {
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
	SessionID  string    `json:"session_id"`
	User       string    `json:"user"`
	ClientAddr string    `json:"client_addr"`
	ClientZone string    `json:"client_zone"`
	Verdict    Verdict   `json:"verdict,omitempty"`
	Rule       string    `json:"rule,omitempty"`

	Service    string `json:"service,omitempty"`
	ServerAddr string `json:"server_addr,omitempty"`
	ServerZone string `json:"server_zone,omitempty"`
	Target     string `json:"target,omitempty"`
	// Reason says why, in words for an operator (never sent to the client).
	Reason string `json:"reason,omitempty"`
	// Detail holds what is specific to the event type, e.g. "command",
	// "subsystem", "env", "path", "bytes", "exit_status".
	Detail map[string]any `json:"detail,omitempty"`
	// Chain is set by the store that keeps the event (see Link); what a
	// writer sets is replaced.
	Chain *Link `json:"chain,omitempty"`
}
