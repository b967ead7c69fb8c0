// Command vpa-graceful-drain serves the function locally. This file is kn func's Go
// scaffolding for an instanced HTTP function (templates/go/scaffolding/instanced-http/main.go),
// unchanged but for the import path, so `make run` serves the function with the same runtime
// that `kn func deploy` builds (func.yaml `invoke: http` selects that scaffolding).
package main

import (
	"fmt"
	"os"

	"knative.dev/func-go/http"

	f "function"
)

func main() {
	if err := http.Start(f.New()); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
