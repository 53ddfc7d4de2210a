package main

import (
	"slices"
	"testing"
)

func TestWithoutResume(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"--listen", "unix:/s", "--resume", "8,9,10"}, []string{"--listen", "unix:/s"}},
		{[]string{"-resume=8,9,10", "--workload-group"}, []string{"--workload-group"}},
		{[]string{"--dormant-after", "5s", "--resume", "1,2,3", "--waiter", "/w"}, []string{"--dormant-after", "5s", "--waiter", "/w"}},
		{[]string{"resume", "--resumed"}, []string{"resume", "--resumed"}},
	} {
		if got := withoutResume(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("withoutResume(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
