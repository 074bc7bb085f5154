package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// jsonlStore appends one JSON object per line to a file opened O_APPEND.
//
// Durability policy: every WriteBatch (the Queue writes one batch per wake-up,
// up to queueMaxBatch events) is a single write(2) of all its lines followed
// by one fsync(2), so a batch is either on disk when WriteBatch returns nil
// or reported as failed. Write is a batch of one. A crash during a write can
// leave a torn last line; Open terminates it with a newline and Query skips
// lines that are not a JSON event.
//
// The chain head and the instance counters of the store's gateway live in
// the file itself (the last linked event, the TypeInstances events): Open
// reads the whole file once to find them.
type jsonlStore struct {
	path    string
	gateway string // whose chain and instances this store writes

	mu     sync.Mutex // serialises writes, Probe and Close; guards the fields below
	f      *os.File
	closed bool
	head   chainHead
	next   map[string]uint64 // service -> next free instance
	// stale is set when a write failed: part of it may be on disk, so
	// the head is read from the file again before the next write.
	stale bool
	// torn is set when a write failed, which may have left part of a line;
	// the next write first ends it (terminateTornLine).
	torn bool
}

var _ Store = (*jsonlStore)(nil)
var _ BatchWriter = (*jsonlStore)(nil)
var _ Prober = (*jsonlStore)(nil)

// OpenJSONL opens (creating 0600 if needed) the append-only JSON lines file at path.
func OpenJSONL(path, gateway string) (Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: jsonl: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: jsonl: %w", err)
	}
	if err := terminateTornLine(f, path); err != nil {
		f.Close()
		return nil, err
	}
	s := &jsonlStore{path: path, gateway: gateway, f: f}
	if err := s.load(context.Background()); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// load reads the chain head and the instance counters of s.gateway from
// the file.
func (s *jsonlStore) load(ctx context.Context) error {
	r, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("audit: jsonl: %w", err)
	}
	defer r.Close()
	var (
		head    chainHead
		headErr error
	)
	next := map[string]uint64{}
	err = scanJSONL(ctx, r, func(e Event) {
		if e.Chain != nil && e.Chain.Gateway == s.gateway {
			head, headErr = headOf(e.Chain.Seq, e.Chain.Hash)
		}
		s.count(next, e)
	})
	if err != nil {
		return err
	}
	if headErr != nil {
		return headErr
	}
	s.head, s.next, s.stale = head, next, false
	return nil
}

// count raises next (service -> next free instance) above the instances e
// uses or reserved, if it is one of s.gateway's.
func (s *jsonlStore) count(next map[string]uint64, e Event) {
	prefix := s.gateway + "/"
	if e.Type == TypeInstances && e.Chain != nil && e.Chain.Gateway == s.gateway {
		if last, ok := detailInt(e.Detail, "last"); ok && last > 0 && uint64(last) < maxInstance {
			next[e.Service] = max(next[e.Service], uint64(last)+1)
		}
	}
	if rest, ok := strings.CutPrefix(e.SessionID, prefix); ok {
		if svc, _, ok := strings.Cut(rest, ":"); ok {
			if n := instanceOf(e.SessionID, prefix+svc+":"); n > 0 && n < maxInstance {
				next[svc] = max(next[svc], n+1)
			}
		}
	}
}

// terminateTornLine appends a newline when the file does not end with one,
// so that the next event starts on a line of its own.
func terminateTornLine(f *os.File, path string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("audit: jsonl: %w", err)
	}
	if st.Size() == 0 {
		return nil
	}
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: jsonl: %w", err)
	}
	defer r.Close()
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, st.Size()-1); err != nil {
		return fmt.Errorf("audit: jsonl: %w", err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("audit: jsonl: %w", err)
	}
	return nil
}

func (s *jsonlStore) Write(ctx context.Context, e Event) error {
	return s.WriteBatch(ctx, []Event{e})
}

// WriteBatch appends events, each linked to the chain of the store's
// gateway, with one write and one fsync.
func (s *jsonlStore) WriteBatch(ctx context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.appendLocked(ctx, events)
}

// appendLocked links and appends events; s.mu is held.
func (s *jsonlStore) appendLocked(ctx context.Context, events []Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: jsonl write: %w", err)
	}
	if s.torn {
		if err := terminateTornLine(s.f, s.path); err != nil {
			return err
		}
		s.torn = false
	}
	if s.stale {
		if err := s.load(ctx); err != nil {
			return err
		}
	}
	head := s.head
	var buf bytes.Buffer
	for i := range events {
		e := events[i]
		b, next, err := link(head, s.gateway, &e)
		if err != nil {
			return err
		}
		head = next
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		s.stale, s.torn = true, true
		return fmt.Errorf("audit: jsonl write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		s.stale = true
		return fmt.Errorf("audit: jsonl fsync: %w", err)
	}
	s.head = head
	for _, e := range events {
		s.count(s.next, e)
	}
	return nil
}

// ReserveInstances implements InstanceReserver: the reservation event is
// the counter.
func (s *jsonlStore) ReserveInstances(ctx context.Context, service string, n uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if n == 0 || n > maxReserve {
		return 0, fmt.Errorf("audit: reserve %d instances: want 1..%d", n, maxReserve)
	}
	first := max(s.next[service], 1)
	if first > maxInstance-n {
		return 0, fmt.Errorf("audit: reserve instances of %s/%s: counter exhausted", s.gateway, service)
	}
	if err := s.appendLocked(ctx, []Event{reservation(s.gateway, service, first, n)}); err != nil {
		return 0, err
	}
	s.next[service] = max(s.next[service], first+n)
	return first, nil
}

// Probe checks that the open file is still the one at the store's path.
// When it was deleted or replaced, Probe opens (creating) the path anew and
// returns an error wrapping ErrStoreReplaced.
func (s *jsonlStore) Probe(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	opened, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: jsonl probe: %w", err)
	}
	same, err := stillAt(s.path, opened)
	if err != nil || same {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %s: reopening: %w", ErrStoreReplaced, s.path, err)
	}
	if err := terminateTornLine(f, s.path); err != nil {
		f.Close()
		return fmt.Errorf("%w: %s: reopening: %w", ErrStoreReplaced, s.path, err)
	}
	_ = s.f.Close() // the old file: nothing more goes there
	// The chain and the instance counters go on from memory: reading the
	// new file would start them again (ids would repeat), and the gap in
	// the chain is what audit verify reports.
	s.f, s.torn, s.stale = f, false, false
	return fmt.Errorf("%w: %s: opened a new file", ErrStoreReplaced, s.path)
}

func (s *jsonlStore) Query(ctx context.Context, f Filter) ([]Event, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	r, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("audit: jsonl: %w", err)
	}
	defer r.Close()
	var out []Event
	err = scanJSONL(ctx, r, func(e Event) {
		if f.matches(e) {
			out = append(out, e)
		}
	})
	if err != nil {
		return nil, err
	}
	// The file is in write order; clocks can step back, so sort by time
	// keeping write order for ties, as the SQL stores do.
	sort.SliceStable(out, func(i, j int) bool { return timeKey(out[i].Time) < timeKey(out[j].Time) })
	return keepNewest(out, f.Limit), nil
}

// scanJSONL calls fn for each line of r that decodes as an Event and skips
// the others (torn writes).
func scanJSONL(ctx context.Context, r io.Reader, fn func(Event)) error {
	br := bufio.NewReader(r)
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("audit: jsonl query: %w", err)
			}
		}
		line, err := br.ReadBytes('\n')
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '{' {
			var e Event
			if json.Unmarshal(t, &e) == nil {
				fn(e)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: jsonl query: %w", err)
		}
	}
}

func (s *jsonlStore) Sessions(ctx context.Context, f SessionFilter) ([]SessionSummary, error) {
	return summarise(ctx, s.Query, f)
}

func (s *jsonlStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("audit: jsonl close: %w", err)
	}
	return nil
}

var _ rawStore = (*jsonlStore)(nil)

// scanRaw passes every line, torn ones included (Verify counts them).
func (s *jsonlStore) scanRaw(ctx context.Context, fn func(rawEvent) error) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	r, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("audit: jsonl: %w", err)
	}
	defer r.Close()
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("audit: jsonl verify: %w", err)
		}
		line, err := br.ReadBytes('\n')
		if t := bytes.TrimSpace(line); len(t) > 0 {
			if ferr := fn(rawEvent{where: "line " + strconv.Itoa(n), data: t}); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: jsonl verify: %w", err)
		}
	}
}

// storedHeads: the file keeps no head apart from its events.
func (s *jsonlStore) storedHeads(context.Context) (map[string]chainHead, error) { return nil, nil }
