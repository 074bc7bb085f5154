// Package record writes session recordings in the asciicast v2 format
// (https://docs.asciinema.org/manual/asciicast/v2/), which `asciinema play`
// and `sluice replay` read back.
//
// A recording is one file per session: a JSON header line, then one JSON
// array per event, [seconds since start, code, data], with the codes "o"
// (output to the client), "i" (input from the client, only when asked
// for), "r" (resize, "COLSxROWS") and "m" (marker). Besides the standard
// header keys Sluice writes "sluice_session_id", "sluice_user" and, for exec
// sessions, "sluice_command"; asciinema ignores keys it does not know.
//
// Exec sessions without a pty have a separate stderr stream; asciicast has
// no code for it, so Stderr is recorded as "o", interleaved with stdout in
// the order the proxy relayed it, as a terminal would have shown it.
//
// asciicast data are JSON strings, so UTF-8. Output split in the middle of
// a multi-byte character is carried over to the next event of its stream;
// bytes that are not UTF-8 at all are recorded as U+FFFD.
//
// The data path never waits for the disk: events go to a bounded in-memory
// queue drained by one writer goroutine per Recorder, which buffers and
// flushes at most Params.FlushInterval after the first unflushed event, so
// a crash loses about that much. On a write error or a queue overflow the
// Recorder calls Params.OnError once and stops recording; the caller decides
// whether the session may go on unrecorded (best_effort) or must end
// (fail_closed).
package record
