package function

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"function/config"
)

// The documentation is README.md (the door, at most readmeMaxLines lines) and one page per
// reader's question under docs/. TestDocs holds it to what the code says: every relative link
// resolves (file and heading), and every name a user can set or see (configuration key,
// environment variable, annotation, label, finalizer, reply event type) is defined by exactly
// one table row, a line whose first cell is the name in backticks.

const readmeMaxLines = 250

var (
	// Names on Kubernetes objects (annotations, labels, the finalizer) and the function's
	// CloudEvents source and Event reporting controller: every such literal in the code.
	objectName = regexp.MustCompile(`^vpagracefuldrain\.dev/[a-z0-9-]+$`)
	// Event types the function defines (its replies, and the sweep request).
	eventType = regexp.MustCompile(`^dev\.vpagracefuldrain\.[a-z.]+$`)
	// A markdown link or image: [text](target "title").
	mdLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// Inline code, whose brackets are no links.
	inlineCode = regexp.MustCompile("`[^`]*`")
)

// docPage is one markdown file of the documentation.
type docPage struct {
	path  string   // relative to the module root, slash-separated
	lines []string // the lines outside fenced code blocks ("" for those inside)
	raw   []string // every line
}

func readDocPages(t *testing.T) []docPage {
	t.Helper()
	paths := []string{"README.md"}
	more, err := filepath.Glob(filepath.Join("docs", "*.md"))
	require.NoError(t, err)
	sort.Strings(more)
	paths = append(paths, more...)
	pages := make([]docPage, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		raw := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		lines := make([]string, len(raw))
		fence := ""
		for i, l := range raw {
			trimmed := strings.TrimSpace(l)
			if fence != "" {
				if strings.HasPrefix(trimmed, fence) {
					fence = ""
				}
				continue
			}
			if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
				fence = trimmed[:3]
				continue
			}
			// An indented code block (four spaces after a blank line) holds no links either.
			if strings.HasPrefix(l, "    ") && (i == 0 || strings.TrimSpace(raw[i-1]) == "" || lines[i-1] == "" && strings.HasPrefix(raw[i-1], "    ")) {
				continue
			}
			lines[i] = l
		}
		pages = append(pages, docPage{path: filepath.ToSlash(p), lines: lines, raw: raw})
	}
	return pages
}

// headingSlugs are the anchors GitHub gives a page's headings: the heading's text in lower
// case, punctuation but '-' and '_' dropped, spaces made '-'; a repeated slug gets -1, -2, ...
func headingSlugs(p docPage) map[string]bool {
	slugs := map[string]bool{}
	seen := map[string]int{}
	for _, l := range p.lines {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		text := strings.TrimLeft(l, "#")
		if len(l)-len(text) > 6 || (text != "" && text[0] != ' ' && text[0] != '\t') {
			continue
		}
		s := slug(text)
		if n, ok := seen[s]; ok {
			seen[s] = n + 1
			s = fmt.Sprintf("%s-%d", s, n+1)
		} else {
			seen[s] = 0
		}
		slugs[s] = true
	}
	return slugs
}

func slug(heading string) string {
	text := strings.TrimSpace(strings.TrimRight(strings.TrimSpace(heading), "#"))
	text = mdLink.ReplaceAllStringFunc(text, func(m string) string { // a link's text stays
		return m[strings.Index(m, "[")+1 : strings.Index(m, "]")]
	})
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// tableRows counts, per name, the table rows across the pages whose first cell is exactly
// that name in backticks, and says where they are.
func tableRows(pages []docPage) map[string][]string {
	rows := map[string][]string{}
	for _, p := range pages {
		for i, l := range p.lines {
			if !strings.HasPrefix(l, "|") {
				continue
			}
			cell, _, _ := strings.Cut(l[1:], "|")
			cell = strings.TrimSpace(cell)
			if len(cell) > 2 && strings.HasPrefix(cell, "`") && strings.HasSuffix(cell, "`") && strings.Count(cell, "`") == 2 {
				name := cell[1 : len(cell)-1]
				rows[name] = append(rows[name], fmt.Sprintf("%s:%d", p.path, i+1))
			}
		}
	}
	return rows
}

// sourceNames collects the string literals of the module's own code (not its tests, test
// harnesses, test-support packages such as handlers/drain/draintest, whose fuzzers use
// near-miss names on purpose, nor modules of their own) that match re.
func sourceNames(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	found := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			base := d.Name()
			if path == "." {
				return nil
			}
			if strings.HasPrefix(base, ".") || base == "bin" || base == "testdata" || base == "vendor" ||
				path == "test" || strings.HasSuffix(base, "test") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && re.MatchString(s) {
				found[s] = true
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// environmentOnly are the names EnvNames reads that are not a configuration key nor a key's
// UPPER_SNAKE_CASE spelling (GRACE_PERIOD_SECONDS, documented with its key): CONFIG_MAP,
// DRY_RUN, LOG_LEVEL and the like.
func environmentOnly() []string {
	spelled := map[string]bool{}
	for _, k := range config.Keys() {
		spelled[strings.ToLower(k)] = true
	}
	var only []string
	for _, n := range config.EnvNames() {
		if !spelled[strings.ToLower(strings.ReplaceAll(n, "_", ""))] && !slices.Contains(only, n) {
			only = append(only, n)
		}
	}
	return only
}

func TestDocs(t *testing.T) {
	pages := readDocPages(t)
	byPath := map[string]docPage{}
	for _, p := range pages {
		byPath[p.path] = p
	}
	require.Contains(t, byPath, "README.md")

	t.Run("README is a door", func(t *testing.T) {
		readme := byPath["README.md"]
		assert.LessOrEqual(t, len(readme.raw), readmeMaxLines, "README.md has %d lines: move the rest to a page under docs/", len(readme.raw))
		for _, p := range pages {
			if p.path == "README.md" {
				continue
			}
			assert.True(t, strings.Contains(strings.Join(readme.lines, "\n"), "]("+p.path), "README.md links to no part of %s", p.path)
		}
	})

	t.Run("pages", func(t *testing.T) {
		for _, p := range pages {
			if p.path == "README.md" {
				continue
			}
			t.Run(p.path, func(t *testing.T) {
				require.NotEmpty(t, p.raw)
				assert.True(t, strings.HasPrefix(p.raw[0], "# "), "%s: the first line is its title", p.path)
				assert.True(t, strings.Contains(strings.Join(p.lines, "\n"), "](../README.md"), "%s links back to README.md", p.path)
			})
		}
	})

	t.Run("links", func(t *testing.T) {
		var broken []string
		links := 0
		for _, p := range pages {
			for i, l := range p.lines {
				for _, m := range mdLink.FindAllStringSubmatch(inlineCode.ReplaceAllString(l, ""), -1) {
					target := m[1]
					if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "mailto:") {
						continue
					}
					links++
					where := fmt.Sprintf("%s:%d: %s", p.path, i+1, target)
					file, anchor, _ := strings.Cut(target, "#")
					dest := p.path
					if file != "" {
						dest = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(p.path), file)))
						if _, err := os.Stat(filepath.FromSlash(dest)); err != nil {
							broken = append(broken, where+" (no such file)")
							continue
						}
					}
					if anchor == "" || !strings.HasSuffix(dest, ".md") {
						continue
					}
					page, ok := byPath[dest]
					if !ok {
						b, err := os.ReadFile(filepath.FromSlash(dest))
						require.NoError(t, err)
						page = docPage{path: dest, lines: strings.Split(string(b), "\n")}
					}
					if !headingSlugs(page)[anchor] {
						broken = append(broken, where+" (no heading #"+anchor+" in "+dest+")")
					}
				}
			}
		}
		assert.Empty(t, broken, "broken links:\n%s", strings.Join(broken, "\n"))
		assert.Positive(t, links)
	})

	rows := tableRows(pages)
	annotations := append(sourceNames(t, objectName), "vpa-managed")
	events := sourceNames(t, eventType)
	// The scan must see the code: these names are user-facing and stay.
	require.Contains(t, annotations, "vpagracefuldrain.dev/drain", "the scan found no finalizer: it reads no code")
	require.Contains(t, events, "dev.vpagracefuldrain.finalizer.added", "the scan found no reply type: it reads no code")

	for _, tc := range []struct {
		what  string
		names []string
	}{
		{"configuration key", config.Keys()},
		{"environment variable", environmentOnly()},
		{"annotation, label, finalizer or name on an object", annotations},
		{"event type", events},
	} {
		t.Run(tc.what, func(t *testing.T) {
			require.NotEmpty(t, tc.names)
			var missing, duplicated []string
			for _, n := range tc.names {
				switch where := rows[n]; len(where) {
				case 0:
					missing = append(missing, n)
				case 1:
				default:
					duplicated = append(duplicated, n+" ("+strings.Join(where, ", ")+")")
				}
			}
			assert.Empty(t, missing, "each %s needs one table row whose first cell is the name in backticks (\"| `name` |\"), in README.md or docs/*.md; none for:\n%s",
				tc.what, strings.Join(missing, "\n"))
			assert.Empty(t, duplicated, "each %s is defined in exactly one table row; more than one for:\n%s",
				tc.what, strings.Join(duplicated, "\n"))
		})
	}
}
