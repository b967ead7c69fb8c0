package names_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// names imports nothing: every package can take its names from it.
func TestNamesIsALeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, "function/names").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)), "package names imports")
}

// Every name users see is declared here: no other file of the function (tests and the test
// bed aside) writes one of the project's own names (vpagracefuldrain.dev/..., its reply types
// dev.vpagracefuldrain...., its metric and span names vpagracefuldrain....) as a literal.
func TestEveryNameUsersSeeIsHere(t *testing.T) {
	own := regexp.MustCompile(`^(vpagracefuldrain\.dev/|dev\.vpagracefuldrain\.|vpagracefuldrain\.)`)
	// ownNames are the project's names written as literals in the file at path.
	ownNames := func(path string) []string {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		var found []string
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && own.MatchString(v) {
					found = append(found, path+": "+v)
				}
			}
			return true
		})
		return found
	}
	require.NotEmpty(t, ownNames("names.go"), "the rule finds this package's own names")
	var found []string
	files := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "names", "test", "bin", "testdata", ".bench", ".git", "draintest":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		found = append(found, ownNames(path)...)
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, files, 50, "the walk read the function's files")
	assert.Empty(t, found, "names users see written outside package names")
}
