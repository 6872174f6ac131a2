package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/mfagate/mfagate/mfa"
	"github.com/mfagate/mfagate/seal"
	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
	"github.com/mfagate/mfagate/web"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "mfa",
		Usage: "users | reset <user> | policy [flags] | sessions [--user U] | revoke <session-id> | audit [flags] | db check|backup|restore|migrate | doctor [flags]",
		Short: "Operator commands for mfa_gateway (lock-outs, policy, sessions, backups)",
		Long: `
Manages mfa_gateway's users, team policy and sessions.

While Caddy runs, the commands go through its admin endpoint (--address,
default ` + caddy.DefaultAdminListen + `), so the database stays with the running
server. When Caddy is not running, give --db <file> to work on the database
directly (the key comes from --key-file, default "key" beside the database,
or the MFA_KEY environment variable).

"caddy mfa db backup" has the running Caddy write a consistent copy of its
database; "db check" and "db restore" work on files no Caddy is using;
"db migrate" copies a store into another (bolt or PostgreSQL, either way).`,
		CobraFunc: mfaCommands,
	})
}

// mfaCommands adds the flags and subcommands of `caddy mfa` to cmd.
func mfaCommands(cmd *cobra.Command) {
	cmd.PersistentFlags().String("address", "", "admin API address of the running Caddy")
	cmd.PersistentFlags().String("db", "", "database file: work offline on it (Caddy not running)")
	cmd.PersistentFlags().String("key-file", "", "offline: the key file (default: key beside the database)")
	cmd.PersistentFlags().Bool("json", false, "print JSON instead of a table")
	cmd.AddCommand(
		mfaCommand("users", "List users and their 2FA status", cobra.NoArgs, nil, cmdUsers),
		mfaCommand("reset <user>", "Reset a user's 2FA: delete their factor and codes, end their sessions", cobra.ExactArgs(1), nil, cmdReset),
		mfaCommand("unlock <user>", "Unlock a user's authenticator after too many wrong codes", cobra.ExactArgs(1), nil, cmdUnlock),
		mfaCommand("policy", "Show or set the team policy", cobra.NoArgs, func(c *cobra.Command) {
			c.Flags().String("scope", "default", "policy scope")
			c.Flags().String("require-2fa", "", "on or off")
			c.Flags().Int("timeout", 0, "session timeout in minutes (5 to 1440)")
		}, cmdPolicy),
		mfaCommand("sessions", "List live sessions", cobra.NoArgs, func(c *cobra.Command) {
			c.Flags().String("user", "", "only this user's sessions")
		}, cmdSessions),
		mfaCommand("revoke <session-id>", "End a session", cobra.ExactArgs(1), nil, cmdRevoke),
		mfaCommand("audit", "Export the audit log (newest first)", cobra.NoArgs, func(c *cobra.Command) {
			c.Flags().String("format", "jsonl", "jsonl or csv")
			c.Flags().String("user", "", "only events by or about this user")
			c.Flags().String("type", "", "only events of this type")
		}, cmdAudit),
		dbCommand(),
		doctorCommand(),
	)
}

type mfaRun func(cmd *cobra.Command, args []string, call caller) error

// caller sends one operator request and decodes the JSON answer.
type caller func(method, path string, body any) (map[string]any, error)

func mfaCommand(use, short string, args cobra.PositionalArgs, flags func(*cobra.Command), run mfaRun) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: args, SilenceUsage: true}
	if flags != nil {
		flags(c)
	}
	c.RunE = func(cmd *cobra.Command, a []string) error {
		call, done, err := connect(cmd)
		if err != nil {
			return err
		}
		defer done()
		return run(cmd, a, call)
	}
	return c
}

// connect chooses the admin endpoint, or the database file with --db.
func connect(cmd *cobra.Command) (caller, func(), error) {
	db, _ := cmd.Flags().GetString("db")
	if db != "" {
		return offline(cmd, db)
	}
	addr, _ := cmd.Flags().GetString("address")
	addr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, "", "")
	if err != nil {
		return nil, nil, err
	}
	return func(method, path string, body any) (map[string]any, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		res, err := caddycmd.AdminAPIRequest(addr, method, adminBase+path, http.Header{"Content-Type": {"application/json"}}, rd)
		if err != nil {
			return nil, adminErr(err, addr, "Without a running Caddy, use --db <file>")
		}
		defer res.Body.Close()
		return decodeOps(res.StatusCode, res.Body)
	}, func() {}, nil
}

// offline opens the database directly; a running Caddy holds its lock, and
// then the command says so instead of waiting. The requests go straight to
// the operator operations, with no HTTP in between.
func offline(cmd *cobra.Command, db string) (caller, func(), error) {
	svc, err := openOffline(cmd, db)
	if err != nil {
		return nil, nil, err
	}
	return func(method, path string, body any) (map[string]any, error) {
		var raw map[string]json.RawMessage
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, &raw); err != nil {
				return nil, err
			}
		}
		p, query, _ := strings.Cut(path, "?")
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, err
		}
		status, v := web.Operate(cmd.Context(), svc, method, p, q, raw)
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return decodeOps(status, bytes.NewReader(b))
	}, func() { svc.Close() }, nil
}

// openOffline opens the database file and its service in-process.
func openOffline(cmd *cobra.Command, db string) (*mfa.Service, error) {
	store, err := bolt.Open(db, bolt.Options{Timeout: time.Second})
	if errors.Is(err, storage.ErrLocked) {
		return nil, fmt.Errorf("%w: Caddy is probably running; drop --db to go through its admin endpoint", err)
	}
	if err != nil {
		return nil, err
	}
	key, err := offlineKey(cmd, db)
	if err != nil {
		store.Close()
		return nil, err
	}
	// Offline, the Caddyfile's audit_retention is unknown: prune nothing.
	svc, err := mfa.Open(mfa.Options{Store: store, Key: key, AuditRetention: 100 * 365 * 24 * time.Hour})
	if err != nil {
		store.Close()
		return nil, err
	}
	return svc, nil
}

func offlineKey(cmd *cobra.Command, db string) ([]byte, error) {
	if v := os.Getenv("MFA_KEY"); v != "" {
		return seal.ParseKey(v)
	}
	path, _ := cmd.Flags().GetString("key-file")
	if path == "" {
		path = filepath.Join(filepath.Dir(db), "key")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w (set --key-file or MFA_KEY)", err)
	}
	return seal.ParseKey(string(b))
}

// adminErr is the message of a failed admin request: the gateway's own when
// it answered (Caddy's client turns an error answer into an error), or where
// Caddy was looked for and what to do without it.
func adminErr(err error, addr, without string) error {
	if _, js, ok := strings.Cut(err.Error(), ": {"); ok {
		if _, derr := decodeOps(http.StatusBadRequest, strings.NewReader("{"+js)); derr != nil {
			return derr
		}
	}
	return fmt.Errorf("%w\n(is Caddy running with its admin endpoint at %s? %s)", err, addr, without)
}

func decodeOps(status int, r io.Reader) (map[string]any, error) {
	var m map[string]any
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("unreadable answer (HTTP %d): %w", status, err)
	}
	if status >= 300 {
		msg, _ := m["message"].(string)
		if msg == "" {
			msg, _ = m["error"].(string)
		}
		return nil, fmt.Errorf("%s (HTTP %d)", msg, status)
	}
	return m, nil
}

func printJSON(cmd *cobra.Command, v any) bool {
	if j, _ := cmd.Flags().GetBool("json"); !j {
		return false
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	return true
}

func table(cmd *cobra.Command, header string, rows [][]string) {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func str(m map[string]any, k string) string {
	switch v := m[k].(type) {
	case string:
		return v
	case bool:
		if v {
			return "yes"
		}
		return "no"
	case float64:
		return fmt.Sprint(v)
	case nil:
		return "-"
	}
	return fmt.Sprint(m[k])
}

func list(m map[string]any, k string) []map[string]any {
	var out []map[string]any
	items, _ := m[k].([]any)
	for _, it := range items {
		if mm, ok := it.(map[string]any); ok {
			out = append(out, mm)
		}
	}
	return out
}

func cmdUsers(cmd *cobra.Command, _ []string, call caller) error {
	m, err := call("GET", "users", nil)
	if err != nil || printJSON(cmd, m) {
		return err
	}
	var rows [][]string
	for _, u := range list(m, "members") {
		rows = append(rows, []string{str(u, "user"), str(u, "enrolled"), str(u, "method"), str(u, "locked"), str(u, "last_sign_in"), str(u, "sessions")})
	}
	table(cmd, "USER\t2FA\tMETHOD\tLOCKED\tLAST SIGN-IN\tSESSIONS", rows)
	return nil
}

func cmdReset(cmd *cobra.Command, args []string, call caller) error {
	m, err := call("POST", "users/reset", map[string]string{"user": args[0]})
	if err != nil || printJSON(cmd, m) {
		return err
	}
	mailed := "they were emailed"
	if m["emailed"] != true {
		mailed = "no email was sent (that needs a running Caddy with smtp and an address for them): tell them yourself"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "2FA reset for %s; %s session(s) ended; %s\n", args[0], str(m, "sessions_ended"), mailed)
	return nil
}

func cmdUnlock(cmd *cobra.Command, args []string, call caller) error {
	m, err := call("POST", "users/unlock", map[string]string{"user": args[0]})
	if err != nil || printJSON(cmd, m) {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "authenticator unlocked for %s\n", args[0])
	return nil
}

func cmdPolicy(cmd *cobra.Command, _ []string, call caller) error {
	scope, _ := cmd.Flags().GetString("scope")
	req, _ := cmd.Flags().GetString("require-2fa")
	timeout, _ := cmd.Flags().GetInt("timeout")
	body := map[string]any{"scope": scope}
	switch req {
	case "":
	case "on", "true":
		body["require_2fa"] = true
	case "off", "false":
		body["require_2fa"] = false
	default:
		return fmt.Errorf("--require-2fa %q: want on or off", req)
	}
	if timeout != 0 {
		body["idle_minutes"] = timeout
	}
	var m map[string]any
	var err error
	if len(body) > 1 {
		m, err = call("POST", "policy", body)
	} else {
		m, err = call("GET", "policy?scope="+url.QueryEscape(scope), nil)
	}
	if err != nil || printJSON(cmd, m) {
		return err
	}
	idle := str(m, "idle_minutes")
	if idle == "0" {
		idle = "(Caddyfile idle_timeout)"
	}
	table(cmd, "SCOPE\tREQUIRE 2FA\tSINCE\tTIMEOUT (MIN)", [][]string{{str(m, "scope"), str(m, "require_2fa"), str(m, "since"), idle}})
	return nil
}

func cmdSessions(cmd *cobra.Command, _ []string, call caller) error {
	user, _ := cmd.Flags().GetString("user")
	m, err := call("GET", "sessions?user="+url.QueryEscape(user), nil)
	if err != nil || printJSON(cmd, m) {
		return err
	}
	var rows [][]string
	for _, s := range list(m, "sessions") {
		rows = append(rows, []string{str(s, "id"), str(s, "user"), str(s, "state"), str(s, "aal"), str(s, "remote_addr"), str(s, "last_active")})
	}
	table(cmd, "ID\tUSER\tSTATE\tAAL\tADDRESS\tLAST ACTIVE", rows)
	return nil
}

func cmdRevoke(cmd *cobra.Command, args []string, call caller) error {
	m, err := call("POST", "sessions/revoke", map[string]string{"session": args[0]})
	if err != nil || printJSON(cmd, m) {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "session of %s ended\n", str(m, "user"))
	return nil
}

// cmdAudit streams the export as it comes: it is text, not a JSON answer.
func cmdAudit(cmd *cobra.Command, _ []string, _ caller) error {
	q := url.Values{}
	for _, f := range []string{"format", "user", "type"} {
		if v, _ := cmd.Flags().GetString(f); v != "" {
			q.Set(f, v)
		}
	}
	body, done, err := rawOps(cmd, "audit?"+q.Encode())
	if err != nil {
		return err
	}
	defer done()
	_, err = io.Copy(cmd.OutOrStdout(), body)
	return err
}

// rawOps fetches an operator path whose answer is a stream, live or offline.
func rawOps(cmd *cobra.Command, path string) (io.Reader, func(), error) {
	if db, _ := cmd.Flags().GetString("db"); db != "" {
		svc, err := openOffline(cmd, db)
		if err != nil {
			return nil, nil, err
		}
		defer svc.Close()
		_, query, _ := strings.Cut(path, "?")
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, nil, err
		}
		var buf bytes.Buffer
		if err := web.ExportAudit(cmd.Context(), svc, &buf, q); err != nil {
			return nil, nil, err
		}
		return &buf, func() {}, nil
	}
	addr, _ := cmd.Flags().GetString("address")
	addr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, "", "")
	if err != nil {
		return nil, nil, err
	}
	res, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, adminBase+path, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	return res.Body, func() { res.Body.Close() }, nil
}
