// Package zone implements Zorp's network zones: named sets of networks
// arranged in a tree by their administrative parent (Zorp's admin_parent).
//
// A Tree answers "which zone is this address in?" with the most specific
// network that contains it (longest-prefix match), using one path-compressed
// binary trie per address family, so the cost of a lookup depends on the
// address length, never on how many networks are configured. IPv4-mapped IPv6
// addresses (::ffff:a.b.c.d) and prefixes are normalised to IPv4 everywhere.
//
// Access control asks Zone.Within: a zone is within another when it is that
// zone or one of its descendants, so permitting "internet" also permits every
// zone whose parent chain reaches "internet".
package zone
