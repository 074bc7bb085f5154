package audit

import (
	"context"
	"strings"
	"time"
)

// ReasonCrashed is the Reason of the session.end events EndOrphans writes.
const ReasonCrashed = "gateway stopped unexpectedly: the session was still open in the audit store when the gateway started again"

// ReasonLeaseExpired is the Reason of the session.end events EndLost writes.
const ReasonLeaseExpired = "gateway lost: its fleet lease expired while the session was open (the node died or lost the store)"

// DetailFoundOpen (in a session.end written by EndOrphans) is when the
// gateway found the session open; the event's Time is that of the last
// event the session left, the closest known to its real end.
const DetailFoundOpen = "found_open_at"

// EndOrphans writes a session.end for every master session of gateway
// that has a session.start but no session.end in st: sessions a crash (or
// a kill -9, or a power loss) left open. Call it at start, before the
// gateway admits sessions: a live session of another process of the same
// gateway name would be ended too. It returns the ids it ended.
func EndOrphans(ctx context.Context, st Store, gateway string, now time.Time) ([]string, error) {
	return endOpen(ctx, st, gateway, ReasonCrashed, now)
}

// EndLost is EndOrphans for another node of a fleet whose lease expired
// (internal/fleet), written by a surviving node, with ReasonLeaseExpired.
func EndLost(ctx context.Context, st Store, gateway string, now time.Time) ([]string, error) {
	return endOpen(ctx, st, gateway, ReasonLeaseExpired, now)
}

// endOpen writes a session.end with reason for every master session of
// gateway left open in st.
func endOpen(ctx context.Context, st Store, gateway, reason string, now time.Time) ([]string, error) {
	sums, err := st.Sessions(ctx, SessionFilter{SessionPrefix: gateway + "/"})
	if err != nil {
		return nil, err
	}
	var ended []string
	for _, s := range sums {
		if !s.End.IsZero() {
			continue
		}
		evs, err := st.Query(ctx, Filter{SessionPrefix: s.ID})
		if err != nil {
			return ended, err
		}
		e := Event{Time: s.Start, Type: TypeSessionEnd, SessionID: s.ID, User: s.User, ClientAddr: s.Client, Target: s.Target,
			Reason: reason, Detail: map[string]any{DetailFoundOpen: now.UTC().Format(time.RFC3339Nano)}}
		for _, x := range evs {
			if x.SessionID != s.ID && !strings.HasPrefix(x.SessionID, s.ID+"/") {
				continue // another session whose id has s.ID as prefix (gw1/ssh-in:1 and :10)
			}
			if x.Time.After(e.Time) {
				e.Time = x.Time
			}
			if x.SessionID == s.ID && x.Type == TypeSessionStart {
				e.ClientZone, e.Service = x.ClientZone, x.Service
			}
		}
		if err := st.Write(ctx, e); err != nil {
			return ended, err
		}
		ended = append(ended, s.ID)
	}
	return ended, nil
}
