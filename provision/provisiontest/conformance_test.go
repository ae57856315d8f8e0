package provisiontest

import "testing"

func TestConformanceInProcess(t *testing.T) {
	RunConformance(t, InProcess(t))
}
