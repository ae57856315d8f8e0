package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// rotateLog copy-truncates path into path.1 when it is larger than max,
// shifting path.1 .. path.(keep-1) up by one and dropping path.keep.
// Copy-truncate, not rename, because components hold the file open with
// O_APPEND: after the truncate their next write goes to offset 0 of the same
// file. Lines written between the copy and the truncate are lost.
func rotateLog(path string, max int64, keep int) (bool, error) {
	st, err := os.Stat(path)
	if err != nil || st.Size() <= max {
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		return false, err
	}
	if keep < 1 {
		keep = 1
	}
	os.Remove(path + "." + strconv.Itoa(keep))
	for i := keep - 1; i >= 1; i-- {
		from := path + "." + strconv.Itoa(i)
		if err := os.Rename(from, path+"."+strconv.Itoa(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	if err := copyFile(path, path+".1"); err != nil {
		return false, fmt.Errorf("rotate %s: %w", path, err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return false, fmt.Errorf("rotate %s: %w", path, err)
	}
	return true, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// rotateAll rotates every *.log file in the log folder that is too large.
func (a *Agent) rotateAll() {
	matches, _ := filepath.Glob(filepath.Join(a.opt.Paths.LogDir, "*.log"))
	for _, m := range matches {
		rotated, err := rotateLog(m, a.opt.RotateSize, a.opt.RotateKeep)
		if err != nil {
			a.log.Warn("log rotation", "file", m, "err", err)
		} else if rotated {
			a.log.Info("rotated log", "file", m)
		}
	}
}

// TailLines returns the last n lines of the file at path (fewer if it is
// shorter), without their newlines. It reads backwards, so a large log
// costs only what is shown.
func TailLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	const block = 64 << 10
	size := st.Size()
	var buf []byte
	off := size
	for off > 0 && bytes.Count(buf, []byte{'\n'}) <= n {
		step := int64(block)
		if off < step {
			step = off
		}
		off -= step
		chunk := make([]byte, step)
		if _, err := f.ReadAt(chunk, off); err != nil && err != io.EOF {
			return nil, err
		}
		buf = append(chunk, buf...)
	}
	text := strings.TrimSuffix(string(buf), "\n")
	if text == "" {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// FollowLog copies what is appended to path to w from offset on, until ctx
// ends. A file that shrinks was rotated (copy-truncate): following resumes
// at its start. It returns ctx's error or the first read or write error.
func FollowLog(ctx context.Context, path string, offset int64, w io.Writer, every time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.Size() < offset {
			offset = 0
		}
		for offset < st.Size() {
			n, err := f.ReadAt(buf, offset)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return werr
				}
				offset += int64(n)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
