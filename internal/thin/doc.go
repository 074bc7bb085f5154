// Package thin bounds what a flood of repeated events costs where they
// are recorded (the audit store, the log). A refusal costs the client one
// packet or one TCP connection and the gateway no work upstream, so a
// client repeating one at wire speed would otherwise write a row or a log
// line for each. Two mechanisms serve every such place in Sluice (the
// console's refusals are bounded by its login rate limit instead, a
// security control with a window per key):
//
//   - Counter counts occurrences by key and keeps the first Burst of each
//     key one by one, then each power of two (the 32nd, 64th, 128th...),
//     which the caller records with the running count; Held gives the keys
//     whose last occurrence was held back, for a closing summary. A flood
//     of n occurrences of one key thus costs at most Burst + log2(n)
//     records. Optional: a bound on the keys (further keys share the zero
//     key's count) and a window after which the counts start again. Kept
//     is its rule alone, for a caller that keeps its own count.
//   - Burst lets the first Burst occurrences of each window pass and counts
//     the rest by key, for one summary per window: a flood costs at most
//     Burst + 1 records per window (+ Keys when counted by key).
//
// Both are safe for concurrent use. They never log or write: the caller
// decides what a kept occurrence or a summary becomes.
package thin
