package main

import "testing"

// TestPrintable: text with terminal control sequences, other control
// bytes or invalid UTF-8 is quoted; ordinary text, spaces and non-ASCII
// letters are not.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"report.txt":            "report.txt",
		"with space ünïcödé 日本": "with space ünïcödé 日本",
		"\r\x1b[Kfake.txt":      `"\r\x1b[Kfake.txt"`,
		"\x1b]52;c;aGk=\a":      `"\x1b]52;c;aGk=\a"`,
		"tab\there":             `"tab\there"`,
		"bad\xffutf8":           `"bad\xffutf8"`,
		"c1\u009bcsi":           `"c1\u009bcsi"`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}
