package zone

import (
	"math/bits"
	"net/netip"
)

// key is an address as a 128-bit big-endian number. IPv4 addresses occupy
// the top 32 bits of hi so that bit i is the same bit of the address in both
// families.
type key struct{ hi, lo uint64 }

func keyOf(a netip.Addr) key {
	if a.Is4() {
		b := a.As4()
		return key{hi: uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32}
	}
	b := a.As16()
	var k key
	for i := range 8 {
		k.hi = k.hi<<8 | uint64(b[i])
		k.lo = k.lo<<8 | uint64(b[8+i])
	}
	return k
}

// bit returns bit i of k, counting from the most significant bit (0).
func (k key) bit(i int) int {
	if i < 64 {
		return int(k.hi >> (63 - i) & 1)
	}
	return int(k.lo >> (127 - i) & 1)
}

// commonLen returns how many leading bits a and b share (0..128).
func commonLen(a, b key) int {
	if x := a.hi ^ b.hi; x != 0 {
		return bits.LeadingZeros64(x)
	}
	return 64 + bits.LeadingZeros64(a.lo^b.lo)
}

// masked returns k with every bit from n on cleared.
func (k key) masked(n int) key {
	switch {
	case n <= 0:
		return key{}
	case n < 64:
		return key{hi: k.hi &^ (^uint64(0) >> n)}
	case n < 128:
		return key{hi: k.hi, lo: k.lo &^ (^uint64(0) >> (n - 64))}
	}
	return k
}

// node is a node of a path-compressed binary trie: it stands for the prefix
// of length bits of key (bits past it are zero). A node with a zone is a
// configured network; one without is a branch point where two networks
// diverge. Each child extends the node's prefix by at least one bit, child[b]
// having b as its bit number bits.
type node struct {
	key   key
	bits  int
	zone  *Zone
	child [2]*node
}

// insert adds the network k/n owned by z below *root. The caller has
// rejected duplicate networks, so an existing node for k/n is a branch point.
func insert(root **node, k key, n int, z *Zone) {
	p := root
	for {
		nd := *p
		if nd == nil {
			*p = &node{key: k, bits: n, zone: z}
			return
		}
		c := min(commonLen(nd.key, k), nd.bits, n)
		switch {
		case c == nd.bits && c == n:
			nd.zone = z
			return
		case c == nd.bits:
			p = &nd.child[k.bit(nd.bits)]
		case c == n:
			nn := &node{key: k, bits: n, zone: z}
			nn.child[nd.key.bit(n)] = nd
			*p = nn
			return
		default:
			branch := &node{key: k.masked(c), bits: c}
			branch.child[k.bit(c)] = &node{key: k, bits: n, zone: z}
			branch.child[nd.key.bit(c)] = nd
			*p = branch
			return
		}
	}
}

// lookup walks from root towards the full-length address a and returns the
// zone of the deepest (most specific) network on the path that contains a.
func lookup(root *node, a key, maxBits int) *Zone {
	var best *Zone
	for nd := root; nd != nil; {
		if commonLen(nd.key, a) < nd.bits {
			break
		}
		if nd.zone != nil {
			best = nd.zone
		}
		if nd.bits >= maxBits {
			break
		}
		nd = nd.child[a.bit(nd.bits)]
	}
	return best
}
