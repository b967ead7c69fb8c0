package surge_test

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/handlers/surge"
)

// DefaultSettings are VPA's updater's defaults: each is compared with the value VPA's
// DefaultUpdaterConfig (pkg/updater/config, of the VPA module go.mod requires) sets, read from
// its source (the package is not imported: see DefaultSettings).
func TestDefaultSettingsAreVPAs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/autoscaler/vertical-pod-autoscaler").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	file := filepath.Join(strings.TrimSpace(string(out)), "pkg", "updater", "config", "config.go")
	vpa := updaterDefaults(t, file)

	got := surge.DefaultSettings()
	for _, tt := range []struct {
		field string
		want  any
	}{
		{"DefaultUpdateThreshold", got.PodUpdateThreshold},
		{"PodLifetimeUpdateThreshold", got.InRecommendationBoundsEvictionLifetimeThreshold},
		{"EvictAfterOOMThreshold", got.EvictAfterOOMThreshold},
		{"UseAdmissionControllerStatus", got.UseAdmissionControllerStatus},
	} {
		v, ok := vpa[tt.field]
		if !assert.True(t, ok, "%s: DefaultUpdaterConfig sets no %s", file, tt.field) {
			continue
		}
		switch want := tt.want.(type) {
		case float64:
			f, _ := constant.Float64Val(constant.ToFloat(v))
			assert.Equal(t, f, want, "%s: VPA's default", tt.field)
		case time.Duration:
			n, exact := constant.Int64Val(constant.ToInt(v))
			assert.True(t, exact, "%s: %s is not a duration", tt.field, v)
			assert.Equal(t, time.Duration(n), want, "%s: VPA's default", tt.field)
		case bool:
			assert.Equal(t, constant.BoolVal(v), want, "%s: VPA's default", tt.field)
		}
	}
}

// updaterDefaults evaluates the constant fields of the UpdaterConfig literal that VPA's
// DefaultUpdaterConfig returns in file (literals, true/false, time's units, products).
func updaterDefaults(t *testing.T, file string) map[string]constant.Value {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	require.NoError(t, err)
	var lit *ast.CompositeLit
	ast.Inspect(f, func(n ast.Node) bool {
		if fn, ok := n.(*ast.FuncDecl); ok && fn.Name.Name == "DefaultUpdaterConfig" {
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if c, ok := n.(*ast.CompositeLit); ok && lit == nil {
					lit = c
				}
				return lit == nil
			})
		}
		return lit == nil
	})
	require.NotNil(t, lit, "%s: no DefaultUpdaterConfig returning a literal", file)
	units := map[string]time.Duration{"Nanosecond": time.Nanosecond, "Microsecond": time.Microsecond, "Millisecond": time.Millisecond,
		"Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
	var eval func(ast.Expr) constant.Value
	eval = func(e ast.Expr) constant.Value {
		switch e := e.(type) {
		case *ast.BasicLit:
			return constant.MakeFromLiteral(e.Value, e.Kind, 0)
		case *ast.Ident:
			switch e.Name {
			case "true", "false":
				return constant.MakeBool(e.Name == "true")
			}
		case *ast.SelectorExpr:
			if pkg, ok := e.X.(*ast.Ident); ok && pkg.Name == "time" {
				if u, ok := units[e.Sel.Name]; ok {
					return constant.MakeInt64(int64(u))
				}
			}
		case *ast.ParenExpr:
			return eval(e.X)
		case *ast.BinaryExpr:
			x, y := eval(e.X), eval(e.Y)
			if x.Kind() != constant.Unknown && y.Kind() != constant.Unknown {
				return constant.BinaryOp(x, e.Op, y)
			}
		}
		return constant.MakeUnknown()
	}
	values := map[string]constant.Value{}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if key, ok := kv.Key.(*ast.Ident); ok {
			if v := eval(kv.Value); v.Kind() != constant.Unknown {
				values[key.Name] = v
			}
		}
	}
	return values
}
