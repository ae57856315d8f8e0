package agent

import "github.com/clusterctl/clusterctl/internal/filesum"

// DefaultSumCache is where SHA256Files keeps the digests it computed: next
// to the packages it mostly covers, per host (lab hosts share /var/lib), and
// removed with them by destroy.
const DefaultSumCache = "/opt/clusterctl/sha256-cache.json"

// SHA256Files returns the sha256 of each regular file in paths; missing
// and unreadable files are left out (the caller reports them). Files that
// did not change since the cache recorded them are not read again (see
// internal/filesum): plan checks every installed file of every host, and
// re-reading a gigabyte of binaries and image archives per host each time
// made a no-change plan of 10 lab hosts take 25 s. cache "" reads
// everything.
func SHA256Files(paths []string, cache string) map[string]string {
	c := filesum.Open(cache)
	sums := map[string]string{}
	for _, p := range paths {
		if sum, _, err := c.Sum(p); err == nil {
			sums[p] = sum
		}
	}
	c.Save() // best effort: a lost cache costs a re-read
	return sums
}
