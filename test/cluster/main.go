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
	return MainWith(m, cp, bin)
}

// MainWith is Main with more components started after the control plane (and stopped
// before it), such as WithControllerManager. Call it from TestMain:
// os.Exit(cluster.MainWith(m, &cp, &bin, cluster.WithControllerManager(&kcm))).
func MainWith(m *testing.M, cp **ControlPlane, bin *string, opts ...MainOption) int {
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
	for _, opt := range opts {
		stop, err := opt(*cp)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			if err := stop(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
	}
	return m.Run()
}

// ControlPlaneMain runs a test package that needs only etcd and kube-apiserver (no function,
// no adapter): it starts them, runs setup (if any) and the tests, and stops everything (also
// on an interrupt). Call it from TestMain: os.Exit(cluster.ControlPlaneMain(m, &cp)).
func ControlPlaneMain(m *testing.M, cp **ControlPlane, setup ...func(*ControlPlane) error) int {
	var err error
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
	for _, s := range setup {
		if err := s(*cp); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}
