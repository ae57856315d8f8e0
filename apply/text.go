package apply

import (
	"encoding/base64"
	"strings"
)

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
