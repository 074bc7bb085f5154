package config

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxAliasNodes bounds how many nodes aliases may expand to in one file,
// so that nested aliases (the "billion laughs") cannot make decoding
// explode.
const maxAliasNodes = 100000

// decoder walks a yaml.Node tree, collecting every error with its line.
type decoder struct {
	file    string
	dir     string // absolute folder of file; relative paths resolve against it
	errs    []*Error
	warns   []*Error
	aliased int                // nodes reached through aliases so far
	sizes   map[*yaml.Node]int // memo of expandedSize

	// Cross-reference facts gathered while decoding, checked afterwards.
	zoneLines map[string]int // zone name -> line of its name
	userLines map[string]int
	refs      []ref
	oidcUses  []ref // services with oidc: true, checked against the oidc section
	// jumps are the router.jump settings that are on, which need roles.
	jumps []ref
}

// ref is a use of a zone or user name, checked once all are declared.
type ref struct {
	kind string // "zone" or "user"
	name string
	line int
	key  string
}

func newDecoder(file string) *decoder {
	dir := filepath.Dir(file)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &decoder{
		file:      file,
		dir:       dir,
		zoneLines: map[string]int{},
		userLines: map[string]int{},
		sizes:     map[*yaml.Node]int{},
	}
}

func (d *decoder) errorAt(line int, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) errorf(n *yaml.Node, key, format string, args ...any) {
	d.errorAt(n.Line, key, format, args...)
}

// warnf records a warning: valid, but most likely not what was meant.
func (d *decoder) warnf(n *yaml.Node, key, format string, args ...any) {
	d.warns = append(d.warns, &Error{File: d.file, Line: n.Line, Key: key, Msg: "warning: " + fmt.Sprintf(format, args...)})
}

// warnings returns the collected warnings ordered by line.
func (d *decoder) warnings() []*Error {
	list := slices.Clone(d.warns)
	slices.SortStableFunc(list, func(a, b *Error) int { return a.Line - b.Line })
	return list
}

// errors returns the collected errors ordered by line; errors on the same
// line keep the order they were found in.
func (d *decoder) errors() *Errors {
	list := slices.Clone(d.errs)
	slices.SortStableFunc(list, func(a, b *Error) int { return a.Line - b.Line })
	return &Errors{List: list}
}

// yamlLine matches the position yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// root parses data into the single document's top node, or nil.
func (d *decoder) root(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		d.syntaxError(err)
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.errorf(&next, "", "a second YAML document; the file must hold one")
		return nil
	} else if !errors.Is(err, io.EOF) {
		d.syntaxError(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil
	}
	return doc.Content[0]
}

func (d *decoder) syntaxError(err error) {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	d.errorAt(line, "", "yaml: %s", strings.Join(strings.Fields(msg), " "))
}

// resolve follows aliases to the node they name. Each use of an alias is
// charged the expanded size of what it names; once maxAliasNodes is spent
// resolve reports it and returns nil.
func (d *decoder) resolve(n *yaml.Node, key string) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		if d.aliased <= maxAliasNodes {
			d.aliased += d.expandedSize(n.Alias)
			if d.aliased > maxAliasNodes {
				d.errorf(n, key, "aliases expand to more than %d nodes", maxAliasNodes)
			}
		}
		if d.aliased > maxAliasNodes {
			return nil
		}
		n = n.Alias
	}
	return n
}

// expandedSize counts the nodes of n with aliases expanded, saturating just
// above maxAliasNodes.
func (d *decoder) expandedSize(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	if s, ok := d.sizes[n]; ok {
		return s
	}
	d.sizes[n] = maxAliasNodes + 1 // a node that contains itself is too big
	size := 1
	if n.Kind == yaml.AliasNode {
		size = d.expandedSize(n.Alias)
	}
	for _, c := range n.Content {
		size = min(size+d.expandedSize(c), maxAliasNodes+1)
	}
	d.sizes[n] = size
	return size
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of a node for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "boolean " + n.Value
		case "!!int", "!!float":
			return "number " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

// plainKey is a key that can be written into a key path unquoted.
var plainKey = regexp.MustCompile(`^[a-zA-Z0-9_@*+-][a-zA-Z0-9_.@*+-]*$`)

// joinKey appends name to the key path key, quoting odd names so that an
// error always stays on one line.
func joinKey(key, name string) string {
	if !plainKey.MatchString(name) {
		name = strconv.Quote(name)
	}
	if key == "" {
		return name
	}
	return key + "." + name
}

// field is one key of a mapping and how to decode its value. decode is
// not called for null values, which count as absent.
type field struct {
	name     string
	required bool
	decode   func(n *yaml.Node, key string)
}

// mapping decodes n as a mapping with the given keys, reporting unknown,
// duplicate and missing keys. It reports whether n was a mapping.
func (d *decoder) mapping(n *yaml.Node, key string, fields []field) bool {
	use := n
	if n = d.resolve(n, key); n == nil {
		return false
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(use, key, "want a mapping, got %s", describe(n))
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i], key), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
			d.errorf(n.Content[i], key, "want a key name, got %s", describe(k))
			continue
		}
		name, fkey := k.Value, joinKey(key, k.Value)
		if first, dup := seen[name]; dup {
			d.errorf(k, fkey, "duplicate key (first at line %d)", first)
			continue
		}
		seen[name] = k.Line
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == name })
		if i < 0 {
			d.errorf(k, fkey, "unknown key%s", suggest(name, fields))
			continue
		}
		rv := d.resolve(v, fkey)
		if rv == nil {
			continue
		}
		if isNull(rv) {
			if fields[i].required {
				d.errorf(v, fkey, "missing value")
			}
			continue
		}
		fields[i].decode(v, fkey)
	}
	for _, f := range fields {
		if _, ok := seen[f.name]; f.required && !ok {
			d.errorf(n, joinKey(key, f.name), "missing required key")
		}
	}
	return true
}

// suggest returns ` (did you mean "x"?)` for the closest known key within
// two edits of name, or "".
func suggest(name string, fields []field) string {
	best, bestDist := "", 3
	for _, f := range fields {
		if dist := editDistance(name, f.name); dist < bestDist {
			best, bestDist = f.name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// seq decodes n as a list, calling each for every element with its key.
func (d *decoder) seq(n *yaml.Node, key string, each func(n *yaml.Node, key string)) {
	use := n
	if n = d.resolve(n, key); n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(use, key, "want a list, got %s", describe(n))
		return
	}
	for i, e := range n.Content {
		each(e, fmt.Sprintf("%s[%d]", key, i))
	}
}

// namedSeq decodes a list of mappings that carry a "name" key. Elements
// whose name is present, well-formed and unique in the list are keyed by
// name (services[ssh-in]); the others by index (services[3]).
func (d *decoder) namedSeq(n *yaml.Node, key string, each func(n *yaml.Node, key string)) {
	use := n
	if n = d.resolve(n, key); n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(use, key, "want a list, got %s", describe(n))
		return
	}
	names := make([]string, len(n.Content))
	count := map[string]int{}
	for i, e := range n.Content {
		names[i] = peekName(e)
		count[names[i]]++
	}
	for i, e := range n.Content {
		seg := strconv.Itoa(i)
		if names[i] != "" && count[names[i]] == 1 {
			seg = names[i]
		}
		each(e, key+"["+seg+"]")
	}
}

// peekName returns the value of the "name" key of mapping n when it is a
// plain name, or "". It does not follow aliases, so costs nothing.
func peekName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "name" {
			if v.Kind == yaml.ScalarNode && nameRE.MatchString(v.Value) {
				return v.Value
			}
			return ""
		}
	}
	return ""
}

// scalar returns the resolved scalar n, reporting an error naming want
// when n is not one.
func (d *decoder) scalar(n *yaml.Node, key, want string) (*yaml.Node, bool) {
	use := n
	if n = d.resolve(n, key); n == nil {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(use, key, "want %s, got %s", want, describe(n))
		return nil, false
	}
	return n, true
}

// str decodes a non-empty string. Numbers are taken as their text.
func (d *decoder) str(n *yaml.Node, key string, dst *string) bool {
	s, ok := d.scalar(n, key, "a string")
	if !ok {
		return false
	}
	if s.ShortTag() == "!!bool" {
		d.errorf(n, key, "want a string, got %s", describe(s))
		return false
	}
	if s.Value == "" {
		d.errorf(n, key, "must not be empty")
		return false
	}
	*dst = s.Value
	return true
}

func (d *decoder) boolean(n *yaml.Node, key string, dst *bool) {
	s, ok := d.scalar(n, key, "true or false")
	if !ok {
		return
	}
	v, err := strconv.ParseBool(s.Value)
	if s.ShortTag() != "!!bool" || err != nil {
		d.errorf(n, key, "want true or false, got %s", describe(s))
		return
	}
	*dst = v
}

// integer decodes an integer in [lo, hi].
func (d *decoder) integer(n *yaml.Node, key string, lo, hi int64, dst *int64) bool {
	s, ok := d.scalar(n, key, "an integer")
	if !ok {
		return false
	}
	var v int64
	if s.ShortTag() != "!!int" || s.Decode(&v) != nil {
		d.errorf(n, key, "want an integer, got %s", describe(s))
		return false
	}
	if v < lo || v > hi {
		d.errorf(n, key, "%d is out of range [%d, %d]", v, lo, hi)
		return false
	}
	*dst = v
	return true
}

func (d *decoder) intField(n *yaml.Node, key string, lo, hi int, dst *int) {
	var v int64
	if d.integer(n, key, int64(lo), int64(hi), &v) {
		*dst = int(v)
	}
}

// duration decodes a non-negative Go duration ("90s", "1h30m").
func (d *decoder) duration(n *yaml.Node, key string, dst *Duration) {
	var s string
	if !d.str(n, key, &s) {
		return
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, key, "bad duration %q: want a number with a unit, like 30s or 5m", s)
		return
	}
	if v < 0 {
		d.errorf(n, key, "duration %s must not be negative", v)
		return
	}
	*dst = Duration(v)
}

// enum decodes a string that must be one of allowed.
func (d *decoder) enum(n *yaml.Node, key string, dst *string, allowed ...string) {
	var s string
	if !d.str(n, key, &s) {
		return
	}
	if !slices.Contains(allowed, s) {
		d.errorf(n, key, "bad value %q: want one of %s", s, strings.Join(allowed, ", "))
		return
	}
	*dst = s
}

// strList decodes a list of non-empty strings, calling check (if not nil)
// on each; elements check rejects are left out.
func (d *decoder) strList(n *yaml.Node, key string, dst *[]string, check func(n *yaml.Node, key, s string) bool) {
	*dst = []string{}
	d.seq(n, key, func(e *yaml.Node, k string) {
		var s string
		if d.str(e, k, &s) && (check == nil || check(e, k, s)) {
			*dst = append(*dst, s)
		}
	})
}

// path decodes a file path, resolving it against the config file's folder.
func (d *decoder) path(n *yaml.Node, key string, dst *string) {
	var s string
	if d.str(n, key, &s) {
		*dst = d.abs(s)
	}
}

func (d *decoder) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.dir, p)
}
