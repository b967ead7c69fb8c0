package handlers_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// layers are the concerns of package handlers, each a group of files, from the bottom up: a
// file may use what its own group and the groups of lower levels declare (types, functions,
// variables, constants), never what a group of its own or a higher level declares. So the
// arrows between concerns run one way (docs/design.md, "Layout"): the drain reconciler is
// built on owners and owner checks, never the reverse; sweeps and the releaser on the
// reconciler; the surge controller on the shared parts only. A new file goes in one group.
var layers = []struct {
	level int
	group string
	files []string
}{
	{0, "shared: clients, clock, Events, metrics, the guarded write, lists", []string{"deps.go", "bounded.go", "events.go",
		"metrics.go", "serverclock.go", "guarded.go", "lists.go", "doc.go"}},
	{1, "owners: reading a pod's workload", []string{"owners.go"}},
	{1, "queues: re-checks, last writes, sibling waits", []string{"rechecks.go", "stale.go", "siblings.go"}},
	{1, "leases: the sweep's and the surge budget's", []string{"sweeplease.go", "surgebudget.go"}},
	{2, "owner checks: advice and pacing", []string{"ownerchecks.go", "pacing.go"}},
	{2, "facts: what a decision reads, capacity gaps", []string{"facts.go", "capacitygap.go"}},
	{2, "surge controller", []string{"surgecontroller.go", "surgeapply.go", "surgereport.go", "surgesweep.go"}},
	{3, "drain reconciler", []string{"reconcile.go", "apply.go"}},
	{4, "releaser", []string{"release.go"}},
	{4, "sweeper", []string{"sweep.go"}},
}

func TestLayersRunOneWay(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	groupOf := map[string]int{}
	for i, l := range layers {
		for _, f := range l.files {
			groupOf[f] = i
		}
	}
	parsed := map[string]*ast.File{}
	declared := map[string]string{} // package-level name -> its file
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		_, ok := groupOf[name]
		assert.True(t, ok, "%s is in no group of layers: add it to the concern it belongs to", name)
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		f, err := parser.ParseFile(fset, name, src, 0)
		require.NoError(t, err)
		parsed[name] = f
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					declared[d.Name.Name] = name
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						declared[s.Name.Name] = name
					case *ast.ValueSpec:
						for _, n := range s.Names {
							declared[n.Name] = name
						}
					}
				}
			}
		}
	}
	var wrong []string
	for name, f := range parsed {
		from := layers[groupOf[name]]
		for _, use := range crossFileUses(f) {
			target, ok := declared[use]
			if !ok || target == name {
				continue
			}
			to := layers[groupOf[target]]
			if groupOf[target] != groupOf[name] && to.level >= from.level {
				wrong = append(wrong, name+" ("+from.group+") uses "+use+" of "+target+" ("+to.group+")")
			}
		}
	}
	sort.Strings(wrong)
	assert.Empty(t, slices.Compact(wrong), "arrows that run up or sideways between concerns")
}

// crossFileUses are the identifiers f uses that it does not declare: those the parser left
// unresolved, other than selectors' names, composite literal keys and fields' names.
func crossFileUses(f *ast.File) []string {
	skip := map[*ast.Ident]bool{}
	var uses []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			skip[n.Sel] = true
		case *ast.KeyValueExpr:
			if id, ok := n.Key.(*ast.Ident); ok {
				skip[id] = true
			}
		case *ast.Field:
			for _, id := range n.Names {
				skip[id] = true
			}
		case *ast.Ident:
			if n.Obj == nil && !skip[n] {
				uses = append(uses, n.Name)
			}
		}
		return true
	})
	return uses
}

// The concerns' types stay small: at most about 20 methods each.
func TestConcernsHaveSmallMethodSets(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	methods := map[string]int{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		lines := fset.File(f.Pos()).LineCount()
		assert.LessOrEqual(t, lines, 400, "%s has %d lines: split it by concern", name, lines)
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil {
				continue
			}
			typ := fd.Recv.List[0].Type
			if star, ok := typ.(*ast.StarExpr); ok {
				typ = star.X
			}
			if idx, ok := typ.(*ast.IndexListExpr); ok {
				typ = idx.X
			}
			if id, ok := typ.(*ast.Ident); ok {
				methods[id.Name]++
			}
		}
	}
	require.NotZero(t, methods["Reconciler"])
	for typ, n := range methods {
		assert.LessOrEqual(t, n, 20, "%s has %d methods", typ, n)
	}
}
