package main

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable is s as it may reach a terminal: s itself when every rune is
// printable (spaces included), else quoted Go-style, so that text a
// sandbox controls (file names, process arguments, output, error
// messages) cannot move the cursor, rewrite earlier lines, set the
// clipboard or title, or plant links (ANSI CSI/OSC sequences), like GNU
// ls quoting names.
func printable(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// trunc cuts s to n runes, marking the cut with "…".
func trunc(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
