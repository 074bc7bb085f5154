// Package record writes session recordings and plays them back.
//
// # Layout
//
// A recording is one file per master session (File), holding every
// recorded channel of that connection, so that a tool running one exec per
// file leaves one file, not thousands. The file is a series of gzip members
// (RFC 1952 §2.2: concatenated members are one valid gzip stream, which
// gunzip and zcat read whole); decompressed, it is JSON lines:
//
//	{"sluice_recording":1,"session_id":"gw1/ssh-in:42","user":"alice","timestamp":1700000000}
//	{"channel":0,"session_id":"gw1/ssh-in:42/ssh/session:0","time":0.21,"pty":true,"width":80,"height":24,"term":"xterm"}
//	[0.254000,0,"o","$ "]
//	{"channel":1,"session_id":"gw1/ssh-in:42/ssh/session:1","time":3.5,"pty":false,"width":80,"height":24,"command":"sh -s","max_stream_bytes":1048576}
//	[3.512000,1,"i","echo hi\n"]
//
// The first line names the master session. An object line starts a
// channel, numbered from 0 in order. An array line is an event [time,
// channel, code, data]: seconds since the file's start (never decreasing
// through the file), the channel's number, and a code as in asciicast v2
// (https://docs.asciinema.org/manual/asciicast/v2/): "o" output, "i" input,
// "r" resize (COLSxROWS), "m" marker, plus "e" for stderr. A channel's
// events with its header are an asciicast v2 recording, times shifted by
// the header's time.
//
// # What is recorded
//
// A pty channel: everything it shows, and the keystrokes only when
// Params.Input is set (they may hold passwords). A channel without a pty
// (an exec, or a shell fed a script by ssh -T): its stdin, stdout and
// stderr, each up to Params.MaxStreamBytes, then an "m" event saying where
// the cap cut it. Channel.Close returns each stream's size and SHA-256 over
// all of its bytes, cap or not, for the audit: a 2 GiB download is
// accounted for without being stored. The keystrokes of a pty channel
// without Params.Input are counted but not digested, since the digest of
// a short stream could be guessed.
//
// Data are JSON strings, so UTF-8. A stream split in the middle of a
// multi-byte character is carried over to its next event; bytes that are
// not UTF-8 at all are recorded as U+FFFD (the digests are of the exact
// bytes).
//
// # Backpressure and failures
//
// Events go to a queue of at most Params.QueueBytes drained by one writer
// goroutine per File; a channel with more to record waits until the writer
// takes the queue, so a disk slower than the network slows the channel
// down and never ends it. The writer compresses into one gzip member and
// finishes the member (and writes it out) at most Params.FlushInterval
// after its first event, so a crash loses about that much and leaves a
// valid file up to the last finished member. On a write error the File
// cuts the file back to its last whole member, calls Params.OnError once
// and records nothing more; with Params.Hold the channels' data calls then
// wait until the channel is closed, so that nothing is relayed unrecorded
// while the caller ends the channel (fail_closed).
//
// # Following
//
// File.Follow hands a live viewer each line as it is queued, before
// compression, with how many lines of the file come before its first: a
// viewer reads the file that far (the screen so far) and goes on with the
// Follower, each line once. A Follower's queue is bounded; one that falls
// behind is cut off (Follower.Behind) instead of holding the session up.
//
// # Playing back
//
// Play and Validate read both these files and the asciicast v2 files
// (one per channel, not compressed) that Sluice wrote before. A file that
// ends inside a line or a gzip member, as a crash leaves it, is read to its
// last whole event and reported with ErrTruncated. Reader is the parser
// for tools of one's own.
package record
