package testenv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCPUFlags(t *testing.T) {
	x86 := "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu aes avx2 vaes pku ospke\nbugs\t\t: sysret_ss_attrs\n\nprocessor\t: 1\nflags\t\t: fpu\n"
	arm := "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd aes pmull sha2\nCPU implementer\t: 0x41\n"
	for _, c := range []struct {
		name, text string
		has, not   []string
	}{
		{"x86", x86, []string{"fpu", "aes", "vaes", "pku", "ospke"}, []string{"sysret_ss_attrs", "AuthenticAMD", "pk"}},
		{"arm64", arm, []string{"fp", "aes", "sha2"}, []string{"vaes", "50.00"}},
		{"empty", "", nil, []string{"aes"}},
	} {
		flags := parseCPUFlags([]byte(c.text))
		for _, f := range c.has {
			if !flags[f] {
				t.Errorf("%s: %s missing from %v", c.name, f, flags)
			}
		}
		for _, f := range c.not {
			if flags[f] {
				t.Errorf("%s: %s found in %v", c.name, f, flags)
			}
		}
	}
}

// CPUHas agrees with /proc/cpuinfo as grep would read it: the flag is a
// whole word on a flags line.
func TestCPUHasMatchesProcCPUInfo(t *testing.T) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		for _, f := range []string{"aes", "pku", "vaes"} {
			if CPUHas(f) {
				t.Errorf("CPUHas(%q) without /proc/cpuinfo", f)
			}
		}
		return
	}
	text := strings.ReplaceAll(string(b), "\t", " ")
	for _, f := range []string{"aes", "pku", "ospke", "vaes", "avx2", "fp"} {
		listed := false
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "flags ") || strings.HasPrefix(line, "Features ") {
				listed = strings.Contains(line+" ", " "+f+" ")
				break
			}
		}
		if CPUHas(f) != listed {
			t.Errorf("CPUHas(%q) = %v, /proc/cpuinfo lists it: %v", f, CPUHas(f), listed)
		}
	}
}

// moduleRoot walks up from the working directory to the directory of the
// go.mod that declares this module.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/enc-pipe/enc-pipe\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod of github.com/enc-pipe/enc-pipe not found above the working directory")
		}
		dir = parent
	}
}

// No test in the repository (nested modules included) skips by itself:
// every skip goes through this package, which decides whether a missing
// thing fails under CI.
func TestEverySkipGoesThroughTestenv(t *testing.T) {
	root := moduleRoot(t)
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || (filepath.Dir(path) == self && !strings.HasSuffix(path, "_test.go")) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		if !importsTesting(f) {
			return nil // a Skip method of its own, not testing's
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			switch sel.Sel.Name {
			case "Skip", "Skipf", "SkipNow":
				rel, _ := filepath.Rel(root, fset.Position(call.Pos()).Filename)
				t.Errorf("%s:%d: %s calls %s: use testenv.Missing, CPUHas, SkipWithoutCPU or NotApplicable",
					rel, fset.Position(call.Pos()).Line, receiver(sel.X), sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("only %d Go files found under %s", files, root)
	}
}

func importsTesting(f *ast.File) bool {
	for _, imp := range f.Imports {
		if imp.Path.Value == `"testing"` {
			return true
		}
	}
	return false
}

// receiver names the receiver of a call for the message.
func receiver(x ast.Expr) string {
	if id, ok := x.(*ast.Ident); ok {
		return id.Name
	}
	return "a test"
}
