package record

import "sync"

// Follower receives the lines of a File as they are queued for the
// writer, uncompressed, so that a live view of the recording need not
// read the file back. Its queue is bounded: a follower that falls further
// behind than that is cut off (Behind), and never holds the session up.
type Follower struct {
	mu     sync.Mutex
	lines  [][]byte // each ends in '\n'; shared with the writer: read only
	bytes  int
	max    int
	behind bool
	ended  bool
	ready  chan struct{}
}

// Follow starts a Follower that receives every line queued from now on,
// holding at most maxBytes of them. skip is how many lines of the file
// (its header line included) come before the Follower's first: what a
// reader of the file must read before it goes on with the Follower. Stop
// it with Unfollow; a File that closes or stops ends its Followers.
func (r *File) Follow(maxBytes int) (fl *Follower, skip int64) {
	fl = &Follower{max: maxBytes, ready: make(chan struct{}, 1)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.closed {
		fl.end()
		return fl, r.lines
	}
	if r.followers == nil {
		r.followers = make(map[*Follower]struct{})
	}
	r.followers[fl] = struct{}{}
	return fl, r.lines
}

// Unfollow stops fl.
func (r *File) Unfollow(fl *Follower) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.followers, fl)
	fl.end()
}

// endFollowersLocked ends every Follower. r.mu must be held.
func (r *File) endFollowersLocked() {
	for fl := range r.followers {
		fl.end()
	}
	r.followers = nil
}

// push queues line, or cuts the follower off when it is too far behind.
// It is called with the File's lock held, on the session's data path: it
// never waits.
func (fl *Follower) push(line []byte) {
	fl.mu.Lock()
	switch {
	case fl.ended:
	case fl.bytes+len(line) > fl.max:
		fl.behind, fl.ended = true, true
		fl.lines, fl.bytes = nil, 0
	default:
		fl.lines = append(fl.lines, line)
		fl.bytes += len(line)
	}
	fl.mu.Unlock()
	fl.signal()
}

func (fl *Follower) end() {
	fl.mu.Lock()
	fl.ended = true
	fl.mu.Unlock()
	fl.signal()
}

func (fl *Follower) signal() {
	select {
	case fl.ready <- struct{}{}:
	default:
	}
}

// Ready receives when there may be lines to Take, or the Follower has
// ended.
func (fl *Follower) Ready() <-chan struct{} { return fl.ready }

// Take returns the lines queued since the last Take, each ending in
// '\n' (the caller must not change them), and whether more may come:
// false once the File has closed or stopped, or the Follower fell behind
// (Behind).
func (fl *Follower) Take() (lines [][]byte, more bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	lines = fl.lines
	fl.lines, fl.bytes = nil, 0
	return lines, !fl.ended
}

// Behind reports whether fl was cut off for falling behind: lines are
// missing after the last it had.
func (fl *Follower) Behind() bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.behind
}
