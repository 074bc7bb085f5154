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
type jsonlStore struct {
	path string

	mu     sync.Mutex // serialises writes, Probe and Close
	f      *os.File
	closed bool
	// torn is set when a write failed, which may have left part of a line;
	// the next write first ends it (terminateTornLine).
	torn bool
}

var _ Store = (*jsonlStore)(nil)
var _ BatchWriter = (*jsonlStore)(nil)
var _ Prober = (*jsonlStore)(nil)

// OpenJSONL opens (creating 0600 if needed) the append-only JSON lines file at path.
func OpenJSONL(path string) (Store, error) {
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
	return &jsonlStore{path: path, f: f}, nil
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

// WriteBatch appends events with one write and one fsync.
func (s *jsonlStore) WriteBatch(ctx context.Context, events []Event) error {
	var buf bytes.Buffer
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("audit: encode event: %w", err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit: jsonl write: %w", err)
	}
	if s.torn {
		if err := terminateTornLine(s.f, s.path); err != nil {
			return err
		}
		s.torn = false
	}
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		s.torn = true
		return fmt.Errorf("audit: jsonl write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("audit: jsonl fsync: %w", err)
	}
	return nil
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
	s.f, s.torn = f, false
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
