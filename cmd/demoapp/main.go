// Command demoapp runs the demo dashboard app that the gateway is
// demonstrated and tested against. It listens on loopback only.
//
//	demoapp [-listen 127.0.0.1:9080] [-rotate=true] [-shared-path] [-derived-cookie] [-csrf] [-gateway-prefix /_mfa/]
//
// DEMO_WIDGET_SECRET, when set, is the identity secret the support widget's
// tokens are signed with.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/mfagate/mfagate/demoapp"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demoapp:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("demoapp", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9080", "loopback `address` to listen on")
	rotate := fs.Bool("rotate", true, "issue a new session ID at sign-in (false: sign the anonymous session in place)")
	shared := fs.Bool("shared-path", false, "serve everything from /index.php with a do=login|logout|show|search field")
	derived := fs.Bool("derived-cookie", false, `name the cookie "SESS" + 12 hex of sha256(base URL)`)
	csrf := fs.Bool("csrf", false, "require a CSRF token in the sign-in form")
	secure := fs.Bool("secure-cookie", false, "mark the session cookie Secure")
	lax := fs.Bool("lax-cookies", false, "read the session cookie in any letter case and split the Cookie header on ',' too")
	baseURL := fs.String("base-url", "", "base `URL` for -derived-cookie (default http://<listen>/)")
	prefix := fs.String("gateway-prefix", demoapp.DefaultGatewayPrefix, "the gateway's `prefix`: the dashboard links to <prefix>security")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}

	opts := demoapp.DefaultOptions()
	opts.Rotate = *rotate
	opts.SharedPath = *shared
	opts.CookieDerived = *derived
	opts.CSRF = *csrf
	opts.SecureCookie = *secure
	opts.LaxCookies = *lax
	opts.BaseURL = *baseURL
	opts.GatewayPrefix = *prefix
	// The identity secret for the support widget's tokens; an admin can
	// also paste it on the dashboard.
	opts.WidgetSecret = os.Getenv("DEMO_WIDGET_SECRET")
	if opts.BaseURL == "" {
		opts.BaseURL = "http://" + *listen + "/"
	}
	app := demoapp.New(opts)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}

	fmt.Printf("demo app listening on http://%s (cookie %s, rotate=%v, shared-path=%v, csrf=%v)\n",
		ln.Addr(), app.CookieName(), opts.Rotate, opts.SharedPath, opts.CSRF)
	users := demoapp.DefaultUsers()
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	fmt.Println("demo users:")
	for _, u := range names {
		fmt.Printf("  %-6s %s\n", u, users[u])
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// checkLoopback refuses listen addresses that are not on loopback: the app
// deliberately signs users in from Basic credentials on any URL.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("listen address %q is not loopback", addr)
}
