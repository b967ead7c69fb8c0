package cluster

import (
	"fmt"
	"os"
	"testing"
)

// Main runs a real-cluster test package: it builds the function (cmd/vpa-graceful-drain),
// checks the adapter is built, starts the control plane, runs the tests with both, and stops
// everything (also on an interrupt). Call it from TestMain: os.Exit(cluster.Main(m, &cp, &bin)).
func Main(m *testing.M, cp **ControlPlane, bin *string) int {
	dir, err := os.MkdirTemp("", "vpagd-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildFunction(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := Binary("apiserver_receive_adapter"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *cp, err = NewControlPlane(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := (*cp).Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	defer (*cp).StopOnAbort()()
	return m.Run()
}
