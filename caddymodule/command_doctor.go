package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/mfagate/mfagate/doctor"
)

// Exit statuses of `caddy mfa doctor`: the verdict's (0 safe, 1 safe with
// warnings, 2 unsafe), or exitCannotCheck when the checks could not be made.
const exitCannotCheck = 3

// errWarnings makes the process exit 1 (Caddy's Main exits 1 on any plain
// error); the report has said everything already.
var errWarnings = errors.New("safe with warnings")

func doctorCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "doctor --config <Caddyfile> --user <user> --password <password>",
		Short: "Check the mfa_gateway lines against the app: sign in to it directly and report what would fail open",
		Long: `
Signs in to the app behind the site's reverse_proxy directly (never through
the gateway), in a throwaway session, and checks the mfa_gateway block's
sign_in, session_cookie, user_from, success and sign_out against what the app
really does. Each problem names the Caddyfile line to change.

The password is used for the sign-ins only: it is not stored, logged or
printed. It may come from MFA_DOCTOR_PASSWORD instead of --password. The
doctor sends a few requests per second, and at most --max-requests.

Exit status: 0 safe, 1 safe with warnings, 2 unsafe, 3 the checks could not
be made (the message says why).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	f := c.Flags()
	f.StringP("config", "c", "", "the Caddyfile")
	f.StringP("adapter", "a", "caddyfile", "config adapter: only caddyfile (the report names its lines)")
	f.String("site", "", "the site address, when more than one site has an mfa_gateway")
	f.String("upstream", "", "the app's address, instead of the site's reverse_proxy upstream")
	f.String("user", "", "a user of the app to sign in as")
	f.String("password", "", "that user's password (or MFA_DOCTOR_PASSWORD)")
	f.String("wrong-password", "", "a password that must fail (default: a random one)")
	f.String("password-field", "", "the password field of a sign-in with no HTML form (default password)")
	f.Float64("rate", doctor.DefaultRate, fmt.Sprintf("requests per second (at most %d)", doctor.MaxRate))
	f.Int("max-requests", doctor.DefaultMaxRequests, "requests in all")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		status := runDoctor(cmd.Context(), cmd.Flags(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		switch status {
		case 0:
			return nil
		case 1:
			return errWarnings
		}
		// Caddy's Main exits with the status of this error type only.
		return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return status, nil })(cmd, nil)
	}
	return c
}

type flagGetter interface {
	GetString(string) (string, error)
	GetFloat64(string) (float64, error)
	GetInt(string) (int, error)
}

// runDoctor runs the checks and prints the report; it returns the exit status.
func runDoctor(ctx context.Context, fl flagGetter, stdout, stderr io.Writer) int {
	str := func(name string) string { v, _ := fl.GetString(name); return v }
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "mfa doctor: "+format+"\n", args...)
		return exitCannotCheck
	}
	file := str("config")
	if file == "" {
		return fail("--config <Caddyfile> is required")
	}
	if a := str("adapter"); a != "" && a != "caddyfile" {
		return fail("--adapter %s: only caddyfile is supported, since the report names the Caddyfile's lines", a)
	}
	opts := doctor.Options{User: str("user"), Password: str("password"), WrongPassword: str("wrong-password"), PasswordField: str("password-field")}
	if opts.Password == "" {
		opts.Password = os.Getenv("MFA_DOCTOR_PASSWORD")
	}
	if opts.User == "" || opts.Password == "" {
		return fail("--user and --password (or MFA_DOCTOR_PASSWORD) are required")
	}
	opts.Rate, _ = fl.GetFloat64("rate")
	opts.MaxRequests, _ = fl.GetInt("max-requests")
	body, err := os.ReadFile(file)
	if err != nil {
		return fail("reading the config: %v", err)
	}
	cfg, err := doctorConfig(file, body, str("site"))
	if err != nil {
		return fail("%v", err)
	}
	if u := str("upstream"); u != "" {
		cfg.Upstream = u
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	rep, err := doctor.Run(ctx, cfg, opts)
	if err != nil {
		return fail("%v", err)
	}
	if err := rep.Write(stdout); err != nil {
		return fail("writing the report: %v", err)
	}
	return rep.Verdict().ExitCode()
}
