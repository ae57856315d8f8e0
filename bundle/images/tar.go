package images

import (
	"archive/tar"
	"bytes"
	"io"
)

type ioReadCloser = io.ReadCloser

// tarOf returns a layer tarball holding one executable file at /name.
func tarOf(name string, data []byte) io.ReadCloser {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// Writes to a bytes.Buffer cannot fail.
	_ = tw.WriteHeader(&tar.Header{
		Name:     name,
		Mode:     0o755,
		Size:     int64(len(data)),
		ModTime:  epoch,
		Typeflag: tar.TypeReg,
		Format:   tar.FormatPAX,
	})
	_, _ = tw.Write(data)
	_ = tw.Close()
	return io.NopCloser(&buf)
}
