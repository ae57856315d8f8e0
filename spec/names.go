package spec

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// suggest returns ` Did you mean "x"?` for the candidate closest to name,
// or "" when none is close enough to be a plausible typo.
func suggest(name string, candidates []string) string {
	best, bestDist := "", 0
	for _, c := range candidates {
		d := editDistance(name, c)
		if d < 3 && d < len(name) && (best == "" || d < bestDist) {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, by runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 256 || len(rb) > 256 {
		return 1 << 30 // not a typo; don't spend quadratic time on it
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// inlineSuggest is suggest for the middle of a sentence: ` (did you mean "x"?)`.
func inlineSuggest(name string, candidates []string) string {
	s := suggest(name, candidates)
	if s == "" {
		return ""
	}
	return " (did you mean " + strings.TrimPrefix(s, " Did you mean ") + ")"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// quoteList renders names as "a", "b" and "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// dnsLabel reports whether s is an RFC 1123 label: lower-case letters,
// digits and '-', starting and ending with a letter or digit, at most 63.
func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// dnsSubdomain reports whether s is an RFC 1123 subdomain (what Kubernetes
// accepts as a node name): dot-separated labels, at most 253 characters.
func dnsSubdomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !dnsLabel(l) {
			return false
		}
	}
	return true
}

// hostname reports whether s is a DNS name a resolver accepts (letters of
// either case; a trailing dot allowed).
func hostname(s string) bool {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	if !dnsSubdomain(s) {
		return false
	}
	// An all-numeric last label is a mistyped IP address ("10.0.0.300"),
	// not a name.
	last := s[strings.LastIndexByte(s, '.')+1:]
	return strings.Trim(last, "0123456789") != ""
}

// normalizeAddress makes equal addresses compare equal: IPs in canonical
// form, names in lower case without a trailing dot.
func normalizeAddress(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// labelKey validates a Kubernetes label or taint key: [prefix/]name where
// prefix is a DNS subdomain and name is at most 63 characters of
// alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
func labelKey(s string) error {
	name := s
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		prefix := s[:i]
		name = s[i+1:]
		if !dnsSubdomain(prefix) {
			return fmt.Errorf("prefix %q must be a lower-case DNS subdomain", prefix)
		}
	}
	if name == "" {
		return fmt.Errorf("name part must not be empty")
	}
	if !labelValueOK(name) {
		return fmt.Errorf("name part %q must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit", name)
	}
	return nil
}

// labelValueOK reports whether s is a valid label value (may be empty).
func labelValueOK(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || i == len(s)-1 || (c != '-' && c != '_' && c != '.')) {
			return false
		}
	}
	return true
}

// envName reports whether s can be an environment variable name.
func envName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// plural renders "1 word" or "n words".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// CheckClusterName applies the rule for cluster names (a DNS label), for
// the spec and for `clusterctl init -name`.
func CheckClusterName(name string) error {
	if dnsLabel(name) {
		return nil
	}
	return fmt.Errorf("cluster name %s must be a DNS label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", quote(name))
}

// subdomainProblem says why s is not a DNS subdomain (a node name): which
// limit it breaks, or which label is malformed. "" when s is one.
func subdomainProblem(s string) string {
	if dnsSubdomain(s) {
		return ""
	}
	if len(s) > 253 {
		return fmt.Sprintf("it is %d characters, and a DNS name is at most 253 characters", len(s))
	}
	for _, l := range strings.Split(s, ".") {
		if len(l) > 63 {
			return fmt.Sprintf("its part %s is %d characters, and each dot-separated part (a DNS label) is at most 63 characters", quote(l), len(l))
		}
	}
	return "letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit and at most 63 characters"
}

// checkRelease refuses a version that is not a plain release
// MAJOR.MINOR.PATCH (an optional leading "v" aside): pre-release and build
// suffixes name no release clusterctl ships, and a build suffix would be
// dropped without a word.
func checkRelease(s string) error {
	parts := strings.Split(strings.TrimPrefix(s, "v"), ".")
	ok := len(parts) == 3
	for _, p := range parts {
		ok = ok && p != "" && strings.Trim(p, "0123456789") == ""
	}
	if ok {
		return nil
	}
	return fmt.Errorf("version %s is not MAJOR.MINOR.PATCH, like 1.37.2 (no pre-release or build suffix)", quote(s))
}
