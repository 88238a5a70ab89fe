package securebuf

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parsePackage(t *testing.T) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, dir := range []string{".", "internal/memcall"} {
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(fset, name, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = f
		}
	}
	return fset, files
}

func selector(n ast.Node) string {
	if s, ok := n.(*ast.SelectorExpr); ok {
		if x, ok := s.X.(*ast.Ident); ok {
			return x.Name + "." + s.Sel.Name
		}
	}
	return ""
}

// Comparisons of secret data are constant time, and nothing in the
// package compares bytes any other way.
func TestSecretBytesComparedInConstantTimeOnly(t *testing.T) {
	fset, files := parsePackage(t)
	calls := map[string][]string{} // function -> selectors it calls
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				switch sel := selector(call.Fun); sel {
				case "bytes.Equal", "bytes.Compare", "reflect.DeepEqual", "slices.Equal", "slices.Compare":
					t.Errorf("%s: %s in non-test code; use crypto/subtle", fset.Position(call.Pos()), sel)
				}
			}
			if b, ok := n.(*ast.BinaryExpr); ok && (b.Op == token.EQL || b.Op == token.NEQ) {
				if _, ok := b.X.(*ast.IndexExpr); ok {
					if _, ok := b.Y.(*ast.IndexExpr); ok {
						t.Errorf("%s: byte-by-byte comparison of two slices", fset.Position(b.Pos()))
					}
				}
			}
			return true
		})
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil {
				continue
			}
			ast.Inspect(fd, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					calls[fd.Name.Name] = append(calls[fd.Name.Name], selector(call.Fun))
				}
				return true
			})
		}
	}
	for _, fn := range []string{"Equal", "EqualBytes", "canaryIntact"} {
		found := false
		for _, c := range calls[fn] {
			found = found || c == "subtle.ConstantTimeCompare"
		}
		if !found {
			t.Errorf("%s does not call subtle.ConstantTimeCompare", fn)
		}
	}
}

// No global side effects on import: no init functions, and the only
// package-level variables with initialisers are error values, the registry
// and static tables.
func TestNoInitFunctions(t *testing.T) {
	fset, files := parsePackage(t)
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "init" && fd.Recv == nil {
				t.Errorf("%s: func init in non-test code", fset.Position(fd.Pos()))
			}
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				for _, v := range spec.(*ast.ValueSpec).Values {
					ast.Inspect(v, func(n ast.Node) bool {
						call, ok := n.(*ast.CallExpr)
						if !ok {
							return true
						}
						if _, conv := call.Fun.(*ast.ParenExpr); conv {
							return true // a type conversion such as (*T)(nil)
						}
						switch sel := selector(call.Fun); sel {
						case "errors.New", "os.Getpagesize":
						default:
							t.Errorf("%s: package-level initialiser calls %s", fset.Position(call.Pos()), sel)
						}
						return true
					})
				}
			}
		}
		for _, imp := range f.Imports {
			if imp.Name != nil && imp.Name.Name == "_" {
				t.Errorf("%s: blank import %s", fset.Position(imp.Pos()), imp.Path.Value)
			}
		}
	}
}
