package results

import (
	"math"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSummarizeTakesTheMiddleValueOrTheMeanOfTheTwoMiddleOnes(t *testing.T) {
	odd := Summarize([]float64{5, 1, 3})
	if odd.Median != 3 || odd.Min != 1 || odd.Max != 5 || odd.N != 3 {
		t.Errorf("Summarize(5,1,3) = %+v", odd)
	}
	even := Summarize([]float64{4, 1, 3, 2})
	if even.Median != (2+3)/2.0 || even.N != 4 {
		t.Errorf("Summarize(4,1,3,2) = %+v", even)
	}
	if empty := Summarize(nil); empty.N != 0 || !math.IsNaN(empty.Median) {
		t.Errorf("Summarize(nil) = %+v", empty)
	}
}

// run has a, b and c measured in rounds 1-3 (c misses round 2), each
// 100 bytes in the given wall times.
func ratioRun() *Run {
	m := func(name string, walls map[int]float64) Measurement {
		ms := Measurement{Name: name, Bytes: 100}
		for r := 1; r <= 3; r++ {
			if w, ok := walls[r]; ok {
				ms.Samples = append(ms.Samples, Sample{Round: r, Wall: w})
			}
		}
		return ms
	}
	return &Run{Scenarios: []Scenario{
		{ID: "one", Measurements: []Measurement{m("a", map[int]float64{1: 1, 2: 2, 3: 4})}},
		{ID: "two", Measurements: []Measurement{
			m("b", map[int]float64{1: 2, 2: 2, 3: 2}),
			m("c", map[int]float64{1: 3, 3: 1}),
		}},
	}}
}

func TestPerRoundComparesTheSameRoundAcrossScenarios(t *testing.T) {
	r := ratioRun()
	got, err := r.PerRound(Ratio{Num: "a", Den: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	// throughput a / throughput b = wall b / wall a, round by round.
	want := []float64{2.0 / 1, 2.0 / 2, 2.0 / 4}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a/b per round = %v, want %v", got, want)
	}
	got, err = r.PerRound(Ratio{Num: "a", Den: []string{"b"}, Time: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{1.0 / 2, 2.0 / 2, 4.0 / 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("time a / time b per round = %v, want %v", got, want)
	}
}

func TestPerRoundUsesTheSlowestDenominatorAndSkipsIncompleteRounds(t *testing.T) {
	r := ratioRun()
	got, err := r.PerRound(Ratio{Num: "a", Den: []string{"b", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	// Round 1: b takes 2, c 3 -> c is slower; round 2: c missing; round
	// 3: b takes 2, c 1 -> b is slower.
	want := []float64{3.0 / 1, 2.0 / 4}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a / slowest(b, c) per round = %v, want %v", got, want)
	}
	got, err = r.PerRound(Ratio{Num: "a", Den: []string{"b", "c"}, Time: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{1.0 / 3, 4.0 / 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("time a / slowest(b, c) per round = %v, want %v", got, want)
	}
	if _, err := r.PerRound(Ratio{Num: "a", Den: []string{"nobody"}}); err == nil {
		t.Error("a ratio over a missing measurement gave no error")
	}
}

func TestGoalMet(t *testing.T) {
	if !(Goal{Op: ">=", Value: 1.5}).Met(1.5) || (Goal{Op: ">=", Value: 1.5}).Met(1.49) {
		t.Error(">= goal misjudged")
	}
	if !(Goal{Op: "<=", Value: 1.3}).Met(1.3) || (Goal{Op: "<=", Value: 1.3}).Met(1.31) {
		t.Error("<= goal misjudged")
	}
}

func TestSaveLoadRoundTrips(t *testing.T) {
	r := ratioRun()
	r.Scenarios[0].Todo = "later"
	path := filepath.Join(t.TempDir(), "results.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Scenarios, r.Scenarios) {
		t.Errorf("Load(Save(r)) differs:\n%+v\nwant\n%+v", got.Scenarios, r.Scenarios)
	}
}
