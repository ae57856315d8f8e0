package lab

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// mountEntry is one line of /proc/PID/mountinfo (proc(5)).
type mountEntry struct {
	Root       string // the mount's root inside its filesystem
	Mountpoint string
	FSType     string
	Source     string
	SuperOpts  string
}

// readMountinfo parses /proc/self/mountinfo of the calling process.
func readMountinfo() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("mountinfo: no separator in %q", line)
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 6 || len(b) < 3 {
			return nil, fmt.Errorf("mountinfo: short line %q", line)
		}
		out = append(out, mountEntry{
			Root:       unescapeMount(a[3]),
			Mountpoint: unescapeMount(a[4]),
			FSType:     b[0],
			Source:     unescapeMount(b[1]),
			SuperOpts:  b[2],
		})
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for a space) the kernel
// uses in mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}
