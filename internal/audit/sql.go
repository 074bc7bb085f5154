package audit

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// dialect is what differs between the SQL stores' statements.
type dialect struct {
	// param is the n-th (1-based) placeholder.
	param func(n int) string
	// hasPrefix is a boolean expression: column starts with placeholder p.
	hasPrefix func(column, p string) string
}

// row is an event as the SQL stores keep it: indexed columns plus the JSON.
type row struct {
	timeNS    int64
	typ       string
	sessionID string
	user      string
	verdict   string
	data      string
}

func toRow(e Event) (row, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return row{}, fmt.Errorf("audit: encode event: %w", err)
	}
	return rowOf(e, b), nil
}

// rowOf is e as a row whose data is e's JSON, data.
func rowOf(e Event, data []byte) row {
	return row{
		timeNS:    timeKey(e.Time),
		typ:       indexKey(e.Type),
		sessionID: indexKey(e.SessionID),
		user:      indexKey(e.User),
		verdict:   indexKey(string(e.Verdict)),
		data:      string(data),
	}
}

func fromJSON(data []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("audit: decode stored event: %w", err)
	}
	return e, nil
}

// timeKey is the indexed time: Unix nanoseconds, clamped to int64 (years
// 1678..2262) so that ordering stays monotonic outside that range.
func timeKey(t time.Time) int64 {
	const minSec, maxSec = math.MinInt64/1_000_000_000 + 1, math.MaxInt64/1_000_000_000 - 1
	switch s := t.Unix(); {
	case s < minSec:
		return math.MinInt64
	case s > maxSec:
		return math.MaxInt64
	}
	return t.UnixNano()
}

// selectEvents builds the query for f; it selects the data column only.
func (d dialect) selectEvents(f Filter) (string, []any) {
	var where []string
	var args []any
	add := func(cond func(p string) string, v any) {
		args = append(args, v)
		where = append(where, cond(d.param(len(args))))
	}
	if !f.Since.IsZero() {
		add(func(p string) string { return "time_ns >= " + p }, timeKey(f.Since))
	}
	if !f.Until.IsZero() {
		add(func(p string) string { return "time_ns < " + p }, timeKey(f.Until))
	}
	if f.User != "" {
		add(func(p string) string { return "user_name = " + p }, indexKey(f.User))
	}
	if f.SessionPrefix != "" {
		add(func(p string) string { return d.hasPrefix("session_id", p) }, indexKey(f.SessionPrefix))
	}
	if f.Type != "" {
		add(func(p string) string { return "type = " + p }, indexKey(f.Type))
	}
	if f.TypePrefix != "" {
		add(func(p string) string { return d.hasPrefix("type", p) }, indexKey(f.TypePrefix))
	}
	if f.Verdict != "" {
		add(func(p string) string { return "verdict = " + p }, indexKey(string(f.Verdict)))
	}
	q := "SELECT id, time_ns, data FROM events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit > 0 {
		args = append(args, int64(f.Limit))
		q = "SELECT data FROM (" + q + " ORDER BY time_ns DESC, id DESC LIMIT " + d.param(len(args)) + ") AS newest ORDER BY time_ns, id"
		return q, args
	}
	return "SELECT data FROM (" + q + ") AS matched ORDER BY time_ns, id", args
}

const insertColumns = "(time_ns, type, session_id, user_name, verdict, data)"

func (d dialect) insertEvent() string {
	ps := make([]string, 6)
	for i := range ps {
		ps[i] = d.param(i + 1)
	}
	return "INSERT INTO events " + insertColumns + " VALUES (" + strings.Join(ps, ", ") + ")"
}

func (r row) args() []any {
	return []any{r.timeNS, r.typ, r.sessionID, r.user, r.verdict, r.data}
}

// selectRaw reads every event with its indexed columns in stored order.
const selectRaw = "SELECT id, time_ns, type, session_id, user_name, verdict, data FROM events ORDER BY id"

// sqlRows is what database/sql's and pgx's rows have in common.
type sqlRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanRawRows hands each row of selectRaw to fn, for audit verify; store
// names the store in errors.
func scanRawRows(rows sqlRows, store string, fn func(rawEvent) error) error {
	for rows.Next() {
		var (
			id   int64
			r    row
			data []byte
		)
		if err := rows.Scan(&id, &r.timeNS, &r.typ, &r.sessionID, &r.user, &r.verdict, &data); err != nil {
			return fmt.Errorf("audit: %s verify: %w", store, err)
		}
		if err := fn(rawEvent{where: "row " + strconv.FormatInt(id, 10), data: data, cols: &r}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: %s verify: %w", store, err)
	}
	return nil
}

// scanHeads reads the rows of SELECT gateway, seq, hash FROM chain_heads.
func scanHeads(rows sqlRows) (map[string]chainHead, error) {
	out := map[string]chainHead{}
	for rows.Next() {
		var (
			gw, hash string
			seq      int64
		)
		if err := rows.Scan(&gw, &seq, &hash); err != nil {
			return nil, fmt.Errorf("audit: chain heads: %w", err)
		}
		h, err := headOf(uint64(seq), hash)
		if err != nil {
			return nil, err
		}
		out[gw] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: chain heads: %w", err)
	}
	return out, nil
}
