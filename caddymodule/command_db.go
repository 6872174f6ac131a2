package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/bolt"
)

// dbCommand is `caddy mfa db`: the database file itself. A backup is taken
// by the running Caddy, which holds the file open and may be mid-write; a
// check and a restore work on files no process holds.
func dbCommand() *cobra.Command {
	db := &cobra.Command{Use: "db", Short: "Back up, check, restore and migrate the database"}
	backup := &cobra.Command{
		Use:          "backup --out FILE",
		Short:        "Write a consistent copy of the running Caddy's database to FILE",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE:         cmdDBBackup,
	}
	backup.Flags().String("out", "", "the backup file to write (required)")
	backup.Flags().String("db-path", "", "which open database, when the running Caddy has several")
	backup.Flags().Bool("force", false, "replace FILE if it exists")
	check := &cobra.Command{
		Use:          "check FILE",
		Short:        "Verify a database file (Caddy not using it) and count its records",
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE:         cmdDBCheck,
	}
	restore := &cobra.Command{
		Use:          "restore --from BACKUP --db FILE",
		Short:        "Replace the database FILE with a checked BACKUP (Caddy stopped)",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE:         cmdDBRestore,
	}
	restore.Flags().String("from", "", "the backup file to restore (required)")
	db.AddCommand(backup, check, restore, migrateCommand())
	return db
}

func cmdDBBackup(cmd *cobra.Command, _ []string) error {
	out, _ := cmd.Flags().GetString("out")
	force, _ := cmd.Flags().GetBool("force")
	if out == "" {
		return errors.New("--out FILE is required: where to write the backup")
	}
	if db, _ := cmd.Flags().GetString("db"); db != "" {
		return errors.New("db backup goes through the running Caddy (--address), not --db: with Caddy stopped, `caddy mfa db check` the file and copy it")
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("--out %s: %w", out, err)
	}
	if err := refuseExisting(out, force); err != nil {
		return err
	}
	addr, _ := cmd.Flags().GetString("address")
	addr, err = caddycmd.DetermineAdminAPIAddress(addr, nil, "", "")
	if err != nil {
		return err
	}
	path := adminBase + "backup"
	if p, _ := cmd.Flags().GetString("db-path"); p != "" {
		path += "?db=" + url.QueryEscape(p)
	}
	res, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, path, nil, nil)
	if err != nil {
		return adminErr(err, addr, "A backup is taken by the running Caddy; with Caddy stopped, `caddy mfa db check` the file and copy it")
	}
	defer res.Body.Close()
	rep, err := writeChecked(out, force, func(f *os.File) error {
		n, err := io.Copy(f, res.Body)
		if err != nil {
			return fmt.Errorf("receive the backup: %w", err)
		}
		if res.ContentLength >= 0 && n != res.ContentLength {
			return fmt.Errorf("receive the backup: got %d of %d bytes", n, res.ContentLength)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("backup to %s: %w", out, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s and checked\n", out)
	printReport(cmd, rep)
	return nil
}

func cmdDBCheck(cmd *cobra.Command, args []string) error {
	rep, err := bolt.Check(args[0])
	if errors.Is(err, storage.ErrLocked) {
		return fmt.Errorf("%w\n%s is in use by a running Caddy: check a copy instead, taken with `caddy mfa db backup --out <file>`", err, args[0])
	}
	if err != nil {
		return err
	}
	if printJSON(cmd, rep) {
		return nil
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", rep.Path)
	printReport(cmd, rep)
	return nil
}

func cmdDBRestore(cmd *cobra.Command, _ []string) error {
	from, _ := cmd.Flags().GetString("from")
	db, _ := cmd.Flags().GetString("db")
	if from == "" || db == "" {
		return errors.New("--from BACKUP and --db FILE are both required")
	}
	from, err := filepath.Abs(from)
	if err != nil {
		return fmt.Errorf("--from %s: %w", from, err)
	}
	if db, err = filepath.Abs(db); err != nil {
		return fmt.Errorf("--db %s: %w", db, err)
	}
	if from == db {
		return errors.New("--from and --db name the same file")
	}
	if _, err := bolt.Check(from); err != nil {
		return fmt.Errorf("the backup failed its check; nothing was changed: %w", err)
	}
	inUse, err := bolt.InUse(db)
	if err != nil {
		return err
	}
	if inUse {
		return fmt.Errorf("%s is in use by a running Caddy: stop Caddy first, then restore", db)
	}
	kept := ""
	if _, err := os.Stat(db); err == nil {
		kept = db + ".bak-" + time.Now().UTC().Format("20060102T150405Z")
		if err := keepCopy(db, kept); err != nil {
			return fmt.Errorf("keep the current database: %w; nothing was changed", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--db: %w", err)
	}
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	rep, err := writeChecked(db, true, func(f *os.File) error {
		_, err := io.Copy(f, src)
		return err
	})
	if err != nil {
		return fmt.Errorf("restore %s: %w; the database was not replaced", db, err)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "restored %s from %s\n", db, from)
	if kept != "" {
		fmt.Fprintf(w, "the previous file is kept at %s\n", kept)
	}
	printReport(cmd, rep)
	return nil
}

func refuseExisting(path string, force bool) error {
	if force {
		return nil
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists: choose another file, or --force to replace it", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// writeChecked writes a database file through a temporary file beside path:
// fill writes it, it is flushed to disk and must pass Check before it takes
// path's name, so path never holds a half-written or damaged file.
func writeChecked(path string, replace bool, fill func(*os.File) error) (bolt.Report, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return bolt.Report{}, err
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			_ = os.Remove(tmp)
		}
	}()
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return bolt.Report{}, err
	}
	rep, err := bolt.Check(tmp)
	if err != nil {
		return bolt.Report{}, fmt.Errorf("the copy failed its check: %w", err)
	}
	if err := refuseExisting(path, replace); err != nil {
		return bolt.Report{}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return bolt.Report{}, err
	}
	done = true
	if err := syncDir(dir); err != nil {
		return bolt.Report{}, fmt.Errorf("%s is written, but the directory did not reach the disk: %w", path, err)
	}
	rep.Path = path
	return rep, nil
}

// keepCopy makes kept a copy of the database at path: a hard link when the
// file system has them, or else a written copy.
func keepCopy(path, kept string) error {
	if err := os.Link(path, kept); err == nil {
		return nil
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(kept, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(kept)
	}
	return err
}

// syncDir flushes a directory, so a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func printReport(cmd *cobra.Command, rep bolt.Report) {
	table(cmd, "SIZE (BYTES)\tSCHEMA\tUSERS\tSESSIONS\tAUDIT EVENTS\tSETTINGS", [][]string{{
		fmt.Sprint(rep.Size), fmt.Sprint(rep.Schema), fmt.Sprint(rep.Users),
		fmt.Sprint(rep.Sessions), fmt.Sprint(rep.AuditEvents), fmt.Sprint(rep.Settings),
	}})
}
