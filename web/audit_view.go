package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/mfagate/mfagate/audit"
	"github.com/mfagate/mfagate/challengeui"
	"github.com/mfagate/mfagate/storage"
)

// The audit log on the admin page, in the API and as exports.

func auditFilter(q url.Values) audit.Filter {
	return audit.Filter{User: strings.TrimSpace(q.Get("user")), Type: strings.TrimSpace(q.Get("type"))}
}

var errBadCursor = &Error{Status: http.StatusBadRequest, Code: "bad_cursor", Message: "That page of the audit log does not exist."}

// auditPage reads one page of events for the filters in q.
func (site *Site) auditPage(c *call, q url.Values) ([]audit.Event, string, *Error) {
	limit, _ := strconv.Atoi(q.Get("limit"))
	evs, next, err := site.svc.Audit.Query(c.ctx(), auditFilter(q), q.Get("before"), limit)
	if errors.Is(err, storage.ErrBadCursor) {
		return nil, "", errBadCursor
	}
	if err != nil {
		return nil, "", site.public(err, "audit query")
	}
	return evs, next, nil
}

// auditView is the admin page's audit section.
func (site *Site) auditView(c *call) (challengeui.AuditView, *Error) {
	q := c.r.URL.Query()
	evs, next, e := site.auditPage(c, q)
	if e != nil {
		return challengeui.AuditView{}, e
	}
	f := auditFilter(q)
	v := challengeui.AuditView{User: f.User, Type: f.Type, Types: audit.Types(), Next: next}
	exp := url.Values{}
	if f.User != "" {
		exp.Set("user", f.User)
	}
	if f.Type != "" {
		exp.Set("type", f.Type)
	}
	v.ExportJSONL = site.cfg.Prefix + "admin/audit.jsonl?" + exp.Encode()
	v.ExportCSV = site.cfg.Prefix + "admin/audit.csv?" + exp.Encode()
	for _, ev := range evs {
		v.Events = append(v.Events, challengeui.AuditRow{
			Time: ev.Time, Type: ev.Type, Actor: ev.Actor, Subject: ev.Subject,
			Address: ev.Remote, UserAgent: ev.UserAgent, Detail: detailText(ev.Detail),
		})
	}
	return v, nil
}

func detailText(d map[string]string) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+d[k])
	}
	return strings.Join(parts, " ")
}

// exportAudit streams the filtered log as a download.
func (site *Site) exportAudit(w http.ResponseWriter, r *http.Request, format string) error {
	ctype := map[string]string{audit.FormatJSONL: "application/x-ndjson", audit.FormatCSV: "text/csv; charset=utf-8"}[format]
	if ctype == "" {
		return WriteJSONError(w, ErrBadRequest.with("format must be jsonl or csv"))
	}
	if err := site.svc.Audit.Flush(r.Context()); err != nil {
		site.log.Warn("flush audit before export")
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", `attachment; filename="mfagate-audit.`+format+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	return site.svc.Audit.Export(r.Context(), w, auditFilter(r.URL.Query()), format)
}

func (site *Site) apiAudit(c *call, _ map[string]json.RawMessage) error {
	_ = site.svc.Audit.Flush(c.ctx())
	evs, next, e := site.auditPage(c, c.r.URL.Query())
	if e != nil {
		return WriteJSONError(c.w, e)
	}
	WriteJSON(c.w, http.StatusOK, map[string]any{"events": orEmpty(evs), "next": next})
	return nil
}

func (site *Site) apiAuditExport(c *call, _ map[string]json.RawMessage) error {
	return site.exportAudit(c.w, c.r, c.r.URL.Query().Get("format"))
}

func (site *Site) pageAuditJSONL(c *call) error { return site.exportAudit(c.w, c.r, audit.FormatJSONL) }
func (site *Site) pageAuditCSV(c *call) error   { return site.exportAudit(c.w, c.r, audit.FormatCSV) }
