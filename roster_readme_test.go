package roster_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeSnippetsAreExamples: every line of every Go snippet in
// README.md is a line of one of the Example functions, which go test
// compiles and runs, so a snippet cannot drift into one that does not
// compile.
func TestReadmeSnippetsAreExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, f := range []string{"roster_test.go", "roster_example_test.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(src), "\n") {
			lines[strings.TrimSpace(l)] = true
		}
	}
	blocks := strings.Split(string(readme), "```go\n")
	if len(blocks) < 2 {
		t.Fatal("README.md has no Go snippet")
	}
	for i, b := range blocks[1:] {
		code, _, ok := strings.Cut(b, "```")
		if !ok {
			t.Fatalf("snippet %d is not closed", i+1)
		}
		for _, l := range strings.Split(code, "\n") {
			if l = strings.TrimSpace(l); l != "" && !lines[l] {
				t.Errorf("README snippet %d: line %q is in no Example", i+1, l)
			}
		}
	}
}
