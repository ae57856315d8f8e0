//go:build !unix

package build

// Lock is a no-op where flock(2) is missing; concurrent builds then only
// waste time, the cache stays consistent (files are renamed into place).
func (b *Builder) Lock() (unlock func(), err error) { return func() {}, nil }
