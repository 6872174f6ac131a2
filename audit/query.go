package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/mfagate/mfagate/storage"
)

// Page sizes for Query.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Filter selects events. Zero fields match everything.
type Filter struct {
	User  string    // the event's Actor or Subject
	Type  string    // the event's Type
	Since time.Time // events at or after Since
	Until time.Time // events before Until
}

func (f Filter) match(e *Event) bool {
	return (f.User == "" || e.Actor == f.User || e.Subject == f.User) &&
		(f.Type == "" || e.Type == f.Type)
}

// needles are byte strings every matching record's JSON must contain: the
// filter values as JSON strings. Checking them before decoding makes a
// filtered scan of a large log cheap; the decoded event is still checked.
func (f Filter) needles() [][]byte {
	var out [][]byte
	for _, v := range []string{f.User, f.Type} {
		if v != "" {
			out = append(out, appendString(nil, v)) // as appendEntry wrote it
		}
	}
	return out
}

// Query returns up to limit events matching f, newest first, starting
// before cursor ("" = the newest), and the cursor for the next page ("" when
// there is none). limit <= 0 means DefaultLimit; above MaxLimit, MaxLimit.
// Each event's Cursor is set, and the returned cursor is the last event's.
//
// Only events already written are seen (see Flush). A cursor the log did
// not issue fails with an error wrapping storage.ErrBadCursor: cursors come
// back from clients, so a handler should answer that with a 400.
func (l *Log) Query(ctx context.Context, f Filter, cursor string, limit int) ([]Event, string, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	needles := f.needles()
	var events []Event
	var next string
	err := l.store.View(ctx, func(tx storage.AuditTx) error {
		events, next = events[:0], ""
		scanned := 0
		return tx.ScanAudit(cursor, func(c string, t time.Time, data []byte) (bool, error) {
			if scanned++; scanned%1024 == 0 {
				if err := ctx.Err(); err != nil { // a long filtered scan
					return false, err
				}
			}
			if !f.Since.IsZero() && t.Before(f.Since) {
				return false, nil // newest first: the rest are older still
			}
			if !f.Until.IsZero() && !t.Before(f.Until) {
				return true, nil
			}
			for _, n := range needles {
				if !bytes.Contains(data, n) {
					return true, nil
				}
			}
			var e Event
			if err := json.Unmarshal(data, &e); err != nil {
				// One damaged record must not hide the rest of the log.
				l.logger.Warn("audit record unreadable, skipped", zap.String("cursor", c), zap.Error(err))
				return true, nil
			}
			if !f.match(&e) {
				return true, nil
			}
			if len(events) == limit { // one more match: there is a next page
				next = events[limit-1].Cursor
				return false, nil
			}
			e.Cursor = c
			if e.Time.IsZero() {
				e.Time = t
			}
			events = append(events, e)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("audit: query: %w", err)
	}
	return events, next, nil
}

// Export formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// CSVHeader is the first row of a CSV export.
func CSVHeader() []string {
	return []string{"time", "type", "actor", "subject", "remote_addr", "user_agent", "detail"}
}

// Export writes every event matching f to w, newest first, as FormatJSONL
// (one Event JSON object per line) or FormatCSV (CSVHeader, then one row
// per event; detail as k=v pairs joined by ";", sorted by key). An unknown
// format fails before anything is written.
//
// Events are read a page at a time, each in its own short transaction, so
// a slow reader of w never holds the store.
//
// CSV cells that a spreadsheet would run as a formula (starting with =, +,
// -, @, tab or carriage return) get a leading ', as OWASP's "CSV Injection"
// advises: user agents and user IDs come from clients, and an admin opens
// the export in a spreadsheet.
func (l *Log) Export(ctx context.Context, w io.Writer, f Filter, format string) error {
	bw := bufio.NewWriter(w)
	var write func(*Event) error
	finish := bw.Flush
	switch format {
	case FormatJSONL:
		enc := json.NewEncoder(bw)
		write = func(e *Event) error { return enc.Encode(e) }
	case FormatCSV:
		cw := csv.NewWriter(bw)
		row := make([]string, 7)
		write = func(e *Event) error {
			row[0] = e.Time.UTC().Format(time.RFC3339Nano)
			row[1], row[2], row[3] = e.Type, e.Actor, e.Subject
			row[4], row[5], row[6] = e.Remote, e.UserAgent, formatDetail(e.Detail)
			for i := range row {
				row[i] = defuseCell(row[i])
			}
			return cw.Write(row)
		}
		finish = func() error {
			cw.Flush()
			if err := cw.Error(); err != nil {
				return err
			}
			return bw.Flush()
		}
		if err := cw.Write(CSVHeader()); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
	default:
		return fmt.Errorf("audit: export: unknown format %q (want %q or %q)", format, FormatJSONL, FormatCSV)
	}

	cursor := ""
	for {
		events, next, err := l.Query(ctx, f, cursor, MaxLimit)
		if err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
		for i := range events {
			if err := write(&events[i]); err != nil {
				return fmt.Errorf("audit: export: %w", err)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if err := finish(); err != nil {
		return fmt.Errorf("audit: export: %w", err)
	}
	return nil
}

// formatDetail renders detail as k=v;k=v sorted by key. A \, ; or = inside
// a key or value is escaped with \, so a value cannot pose as more pairs.
func formatDetail(d map[string]string) string {
	if len(d) == 0 {
		return ""
	}
	esc := strings.NewReplacer(`\`, `\\`, `;`, `\;`, `=`, `\=`)
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(d)) {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(esc.Replace(k))
		b.WriteByte('=')
		b.WriteString(esc.Replace(d[k]))
	}
	return b.String()
}

// defuseCell stops a spreadsheet from reading s as a formula.
func defuseCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
