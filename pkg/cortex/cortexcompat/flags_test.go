package cortexcompat

import "testing"

func TestFlags(t *testing.T) {
	if _, err := parse(flagsTSV); err != nil {
		t.Fatal(err)
	}
	flags := Flags()
	if len(flags) < 1000 {
		t.Fatalf("%d flags, want Cortex's full reference", len(flags))
	}
	if flags[0] != (Flag{Name: "target", Path: "target", Default: `"all"`}) {
		t.Errorf("first flag %+v, want -target", flags[0])
	}
	f, ok := ByPath("querier.active_query_tracker_dir")
	if !ok || f.Name != "querier.active-query-tracker-dir" {
		t.Errorf("ByPath(querier.active_query_tracker_dir) = %+v, %v", f, ok)
	}
	if f, ok := ByName("querier.active-query-tracker-dir"); !ok || f.Path != "querier.active_query_tracker_dir" {
		t.Errorf("ByName(querier.active-query-tracker-dir) = %+v, %v", f, ok)
	}
	if _, ok := ByPath("querier.no_such_key"); ok {
		t.Error("ByPath found a key Cortex does not have")
	}
}

func TestParseRefusesRaggedRows(t *testing.T) {
	_, err := parse("# c\nflag\tyaml_path\tdefault\na\tb\n")
	if err == nil || err.Error() != `cortex-flags-1.21.tsv line 3: 2 columns in "a\tb", want 3` {
		t.Errorf("got %v", err)
	}
}
