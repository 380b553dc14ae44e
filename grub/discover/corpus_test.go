package discover

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopvgrub/gopvgrub/grub"
)

var update = flag.Bool("update", false, "rewrite the corpus' expected.json files (review every diff by hand!)")

const corpusDir = "../../testdata/grub"

// corpusCase is a case.json: the volumes a guest would have, each a
// directory tree, and optionally the extra= naming the config.
type corpusCase struct {
	Description string `json:"description"`
	Source      string `json:"source"`
	Extra       string `json:"extra"`
	Volumes     []struct {
		Device string `json:"device"`
		UUID   string `json:"uuid"`
		Label  string `json:"label"`
		Type   string `json:"type"`
		Dir    string `json:"dir"`
	} `json:"volumes"`
}

func loadCase(t testing.TB, dir string) (*corpusCase, *grub.System) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c corpusCase
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s/case.json: %v", dir, err)
	}
	sys := &grub.System{}
	for _, v := range c.Volumes {
		d, err := grub.ParseDevice(v.Device, false)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		sys.Volumes = append(sys.Volumes, grub.Volume{
			Device: d, UUID: v.UUID, Label: v.Label, Type: v.Type,
			FS: os.DirFS(filepath.Join(dir, v.Dir)),
		})
	}
	return &c, sys
}

func menuJSON(t testing.TB, m *grub.Menu) []byte {
	t.Helper()
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// TestCorpus parses every real-world config in testdata/grub and compares
// the menu with the reviewed golden expected.json.
func TestCorpus(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(corpusDir, "*", "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 30 {
		t.Errorf("corpus has %d cases, want at least 30", len(dirs))
	}
	for _, cj := range dirs {
		dir := filepath.Dir(cj)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c, sys := loadCase(t, dir)
			m, err := Discover(sys, c.Extra)
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			got := menuJSON(t, m)
			golden := filepath.Join(dir, "expected.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update and review the result)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("menu differs from %s:\n%s", golden, lineDiff(string(want), string(got)))
			}
			// The golden file must round-trip through the model.
			var back grub.Menu
			if err := json.Unmarshal(want, &back); err != nil {
				t.Fatalf("expected.json does not parse: %v", err)
			}
		})
	}
}

// lineDiff shows the first differing lines.
func lineDiff(want, got string) string {
	wl, gl := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	var b bytes.Buffer
	n := 0
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			b.WriteString("line " + itoa(i+1) + ":\n  want: " + string(w) + "\n  got:  " + string(g) + "\n")
			if n++; n == 10 {
				break
			}
		}
	}
	return b.String()
}

func itoa(n int) string {
	return string([]byte(func() []byte {
		if n == 0 {
			return []byte("0")
		}
		var d []byte
		for ; n > 0; n /= 10 {
			d = append([]byte{byte('0' + n%10)}, d...)
		}
		return d
	}()))
}
