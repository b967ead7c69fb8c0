// Command vpa-graceful-drain serves the function locally. This file is kn func's Go
// scaffolding (templates/go/scaffolding/instanced-cloudevents/main.go), unchanged, so
// `make run` serves the function with the same runtime that `kn func deploy` builds.
package main

import (
	"fmt"
	"os"

	ce "knative.dev/func-go/cloudevents"

	f "function"
)

func main() {
	if err := ce.Start(f.New()); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
