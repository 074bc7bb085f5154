// Package audit defines Sluice's audit events and the sinks they are written
// to. An Event records one decision or happening with the session id it
// belongs to; its JSON shape is a contract (see DESIGN.md).
//
// # Stores
//
// A Store keeps events durably and answers queries (`sluice audit`,
// `sluice sessions`). Open picks one by the audit.sink config value:
//
//   - "sqlite": STATEDIR/audit.db through modernc.org/sqlite, WAL journal,
//     synchronous=FULL, a busy timeout and a single writer connection.
//   - "jsonl:PATH": an append-only file, one JSON event per line. Every
//     batch is one write and one fsync (see jsonlStore for the policy).
//     Queries scan the file.
//   - "postgres://..." or "postgresql://...": PostgreSQL through a pgx pool.
//
// The SQL stores keep each event as indexed columns (time in Unix
// nanoseconds, type, session id, user, verdict) plus the full event JSON,
// which is what queries return. Their schema is versioned in a
// schema_version table; numbered migrations run in one transaction at Open,
// and a database newer than the binary is refused.
//
// # Queue
//
// The gateway never writes to a Store on the data path: a Queue takes events
// and one writer goroutine stores them in batches. A full queue slows its
// writers down (Write waits, bounded by MaxWait and its context) rather
// than losing events, and is never a store failure. A store failure (a
// write error, a call past StoreTimeout, or a Prober's error such as the
// file deleted under the gateway) starts an outage: Healthy reports it in
// both modes, a FailClosed queue tells the caller through OnUnhealthy (the
// gateway then refuses new sessions and ends live ones), and the writer
// retries with back-off until the store takes writes again, then stores
// what it held with a TypeStoreFailed and a TypeStoreRecovered event saying
// how long the outage lasted and how many events were lost. Events lost
// for any reason are counted (Dropped) and reported in the store.
//
// # Sampler
//
// A Sampler sits in front of a Queue for the events a client can cause
// without authenticating (the gateway selects refused connections, failed
// authentications and refused PROXY peers): past a burst per interval it
// counts them by key and writes one TypeSampled summary per key, so a
// flood costs the store a bounded number of writes per second.
//
// # Event types the stores interpret
//
// Any event type may be written and queried. Store.Sessions summarises
// master sessions (ids GATEWAY/SERVICE:INSTANCE, exactly one "/") from two
// types, which the gateway writes for master sessions only:
//
//   - "session.start" (TypeSessionStart): Time is the start; User,
//     ClientAddr; the target is Detail["target"] or, if absent, Target.
//   - "session.end" (TypeSessionEnd): Time is the end; Detail keys
//     "exit_status" (integer), "bytes_in" and "bytes_out" (integers, bytes
//     from and to the client), "recording" (path of the asciicast file) and
//     optionally "target". Keys absent leave the summary's fields zero.
//
// Events of these types with a stacked session id are ignored by Sessions.
//
// # Gateway name: chain, counters, crashed sessions
//
// A store is opened for one gateway name. Every event it writes carries a
// Link of that gateway's hash chain (the "chain" member), computed in the
// store's writer in stored order; the head is persisted (chain_heads in
// the SQL stores, the last linked line of a JSON lines file), so the
// chain continues across restarts. Verify checks every chain of a store,
// the SQL stores' indexed columns, the kept heads and the recordings that
// session.end events list with their SHA-256 (DetailRecordings).
//
// ReserveInstances hands out blocks of session instance numbers from a
// counter per gateway and service kept in the store (the instances table,
// or TypeInstances events in a JSON lines file), so that session ids stay
// unique for the life of the store; Instances is the gateway's allocator.
// EndOrphans writes the session.end of sessions a crash left open.
// docs/security.md says what this proves and what it cannot.
package audit
