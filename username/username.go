// Package username folds user names the way many apps compare them, so that
// every spelling an app signs in as one user is one user to the gateway.
//
// Apps often sign "ALICE", "Alice", "àlice" and "alice" in as the same
// account: their database collation ignores case and accents, or they
// capitalise the first letter, or read '_' as a space. A gateway that kept
// the spelling the client typed would see a new, unenrolled user and let the
// password through. Fold maps all of those to one form.
//
// Its limits: folding is one-way and may join names an app keeps apart (an
// app with distinct users "a_b" and "a b", or "Bob" and "bob"). That fails
// closed: such users share one second factor at the gateway, so one of them
// is challenged with the other's, never let through. Scripts other than
// Latin fold by Unicode's rules only (case and compatibility forms), without
// any transliteration.
package username

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Fold returns the folded form of a user name: compatibility-normalised
// (NFKC, so full-width "ａｌｉｃｅ" is "alice"), accents removed, case folded,
// '_' read as a space, runs of white space as one space, and trimmed.
func Fold(name string) string {
	t := transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFKC)
	s, _, err := transform.String(t, name)
	if err != nil {
		s = name // not valid text to transform: fold what there is
	}
	// Case folding maps some scripts to upper case (Cherokee), where plain
	// lower-casing maps back: lower-casing last makes Fold idempotent.
	s = strings.ToLower(cases.Fold().String(s))
	s = strings.ReplaceAll(s, "_", " ")
	return strings.Join(strings.Fields(s), " ")
}
