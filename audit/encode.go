package audit

import (
	"time"
	"unicode/utf8"
)

// entry is an event as it waits in the queue: Detail flattened into key,
// value pairs, which costs Record one small allocation where copying the
// map would cost a map's.
type entry struct {
	Time                                    time.Time
	Type, Actor, Subject, Remote, UserAgent string
	detail                                  []string // k0, v0, k1, v1, …; unsorted
}

// appendEntry appends e as JSON, byte for byte what encoding/json makes of
// the matching Event (FuzzAppendEntry checks this), without reflection: it
// runs for every event on the writer goroutine, and json.Marshal was the
// writer's main cost. Query reads it back with encoding/json.
func appendEntry(b []byte, e *entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","type":`...)
	b = appendString(b, e.Type)
	for _, f := range [...]struct{ name, v string }{
		{`,"actor":`, e.Actor}, {`,"subject":`, e.Subject},
		{`,"remote_addr":`, e.Remote}, {`,"user_agent":`, e.UserAgent},
	} {
		if f.v != "" {
			b = append(b, f.name...)
			b = appendString(b, f.v)
		}
	}
	if len(e.detail) > 0 {
		sortPairs(e.detail) // encoding/json sorts map keys
		b = append(b, `,"detail":{`...)
		for i := 0; i < len(e.detail); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, e.detail[i])
			b = append(b, ':')
			b = appendString(b, e.detail[i+1])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// sortPairs sorts key, value pairs by key (insertion sort: at most 16).
func sortPairs(p []string) {
	for i := 2; i < len(p); i += 2 {
		for j := i; j > 0 && p[j] < p[j-2]; j -= 2 {
			p[j], p[j+1], p[j-2], p[j-1] = p[j-2], p[j-1], p[j], p[j+1]
		}
	}
}

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string encoding with HTML escaping (its
// default): quotes, backslashes, control characters, <, > and &, U+2028
// and U+2029 escaped; invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
