//! rpmemd configuration through the built binary: PMDK's own rpmemd_config cases, then our own
//! cases for precedence, `$HOME`, the file grammar and the refusals.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rstest::rstest;

const BIN: &str = env!("CARGO_BIN_EXE_rpmemd");

/// The seven keys `--dump-config` prints, in order.
const DUMP_KEYS: [&str; 7] = [
    "log-file",
    "poolset-dir",
    "persist-apm",
    "persist-general",
    "use-syslog",
    "log-level",
    "nthreads",
];

/// PMDK cases where rpmemd is stricter on purpose (docs/rpmemd.md, "Differences from PMDK"):
/// PMDK accepted a relative `poolset-dir`; rpmemd refuses it, naming the value (`@PWHOME@` is
/// the password-database home directory).
const REFUSED_RELATIVE_POOLSET_DIR: [(&str, &str); 4] = [
    ("t4_unset_prefix_home", "prefix@PWHOME@"),
    ("t4_unset_home_sticky", "$HOMEstickysuffix"),
    ("t4_set_prefix_home", "prefix/user/home/path"),
    ("t4_set_home_sticky", "$HOMEstickysuffix"),
];

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/pmdk-1.12.1/tests/rpmemd_config")
}

/// The home directory of this process's user in the password database.
#[allow(unsafe_code)]
fn passwd_home() -> String {
    // SAFETY: getuid cannot fail; getpwuid returns null or a pointer to a static entry, used
    // before any other password-database call in this test.
    let entry = unsafe { libc::getpwuid(libc::getuid()) };
    assert!(!entry.is_null(), "no password entry for this user");
    // SAFETY: `entry` is non-null and its pw_dir is a NUL-terminated string.
    let dir = unsafe { CStr::from_ptr((*entry).pw_dir) };
    dir.to_string_lossy().into_owned()
}

/// Splits a bash-quoted command line: blanks separate words, '...' is literal, "..." is
/// literal but for \" and \\, a backslash outside quotes escapes the next character.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    w.push(q);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                w.push(e);
                            }
                        }
                        other => w.push(other),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                if let Some(e) = chars.next() {
                    w.push(e);
                }
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    words.extend(word);
    words
}

#[test]
fn shell_words_splits_like_bash() {
    assert_eq!(
        shell_words(r#"-c empty.conf '--poolset-dir=$HOME' "a b" c\ d"#),
        ["-c", "empty.conf", "--poolset-dir=$HOME", "a b", "c d"]
    );
}

/// Runs rpmemd in `cwd` with `home` as HOME (None: unset) and a global configuration file
/// that does not exist unless `global` is given.
fn run(cwd: &Path, home: Option<&str>, global: Option<&Path>, args: &[String]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd)
        .args(args)
        .env_remove("RPMEMD_SYSLOG_SOCKET")
        .env(
            "RPMEMD_GLOBAL_CONFIG",
            global.map_or_else(|| cwd.join("no-global.conf"), Path::to_path_buf),
        );
    match home {
        Some(home) => cmd.env("HOME", home),
        None => cmd.env_remove("HOME"),
    };
    match cmd.output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run {BIN}: {e}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses `--dump-config` output into key -> value.
fn parse_dump(stdout: &[u8]) -> BTreeMap<String, String> {
    text(stdout)
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Parses PMDK's expected output (`log_file\t\t/x`, `poolset_dir:\t\t/y`, ..., `# extra:
/// nthreads=0 ...`) into our key names -> value. `max_lanes` is not configurable and
/// `rm_poolset`/`force`/`pool_set` are requests, not configuration: they are left out.
fn parse_pmdk_out(out: &str, pw_home: &str) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for line in out.lines() {
        if let Some(extra) = line.strip_prefix("# extra:") {
            for (k, v) in extra.split_whitespace().filter_map(|kv| kv.split_once('=')) {
                if k == "nthreads" {
                    values.insert("nthreads".to_owned(), v.to_owned());
                }
            }
            continue;
        }
        if line.starts_with("$HOME") {
            continue;
        }
        let Some((key, value)) = line.split_once(['\t', ' ']) else {
            continue;
        };
        let key = key.trim_end_matches(':');
        if key == "max_lanes" {
            continue;
        }
        let value = value.trim().replace("@PWHOME@", pw_home);
        values.insert(key.replace('_', "-"), value);
    }
    values
}

/// The option specs (`-c, --config <path>`) of PMDK's help text.
fn pmdk_help_options(help: &str) -> Vec<String> {
    help.lines()
        .filter(|l| l.starts_with("  -") || l.starts_with("      --"))
        .filter_map(|l| l.trim_start().split("  ").next())
        .map(str::to_owned)
        .collect()
}

struct Case {
    id: String,
    home: Option<String>,
    args: Vec<String>,
}

fn read_cases(dir: &Path) -> Vec<Case> {
    let list = fs::read_to_string(dir.join("cases.list"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("cases.list").display()));
    list.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut fields = line.splitn(3, '|');
            let id = fields.next().unwrap_or_default().to_owned();
            let home = match fields.next().unwrap_or_default() {
                "H" => Some("/home/tester".to_owned()),
                "UNSET" => None,
                "U" => Some("./home_with_user_conf".to_owned()),
                literal => Some(literal.to_owned()),
            };
            let args = shell_words(fields.next().unwrap_or_default())
                .into_iter()
                // The PMDK test program's own instruction to print $HOME, not an rpmemd option.
                .filter(|a| a != "print_HOME_env")
                .collect();
            Case { id, home, args }
        })
        .collect()
}

/// Checks one PMDK case; returns a description of every difference.
fn check_pmdk_case(dir: &Path, case: &Case, pw_home: &str) -> Vec<String> {
    let expected = |ext: &str| fs::read_to_string(dir.join(format!("expected/{}.{ext}", case.id)));
    let (Ok(out), Ok(err)) = (expected("out"), expected("err")) else {
        return vec![format!("{}: expected files missing", case.id)];
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "conf") {
            let copied = fs::copy(&path, tmp.path().join(entry.file_name()));
            assert!(copied.is_ok(), "copy {}", path.display());
        }
    }
    let mut args = case.args.clone();
    args.push("--dump-config".to_owned());
    let output = run(tmp.path(), case.home.as_deref(), None, &args);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    let code = output.status.code();
    let mut problems = Vec::new();
    let mut problem = |what: String| problems.push(format!("{}: {what}", case.id));

    if out.trim() == "invalid config" {
        // PMDK refused: rpmemd must refuse too, with PMDK's message lines in its error.
        if code != Some(3) || !stdout.is_empty() {
            problem(format!("expected refusal, got {code:?}, stdout {stdout:?}"));
        }
        for line in err.lines().filter(|l| !l.is_empty()) {
            if !stderr.contains(line) {
                problem(format!("stderr {stderr:?} lacks {line:?}"));
            }
        }
    } else if out.is_empty() && err.contains("version") {
        // -V/--version, -h/--help: PMDK printed on stderr, rpmemd prints on stdout.
        if code != Some(0) || !stderr.is_empty() {
            problem(format!("expected success, got {code:?}, stderr {stderr:?}"));
        }
        if !stdout.starts_with("rpmemd version ") && !stdout.starts_with("usage: rpmemd ") {
            problem(format!("unexpected stdout {stdout:?}"));
        }
        for option in pmdk_help_options(&err) {
            if !stdout.contains(&option) {
                problem(format!("help lacks {option:?}"));
            }
        }
    } else if let Some((_, value)) = REFUSED_RELATIVE_POOLSET_DIR
        .iter()
        .find(|(id, _)| *id == case.id)
    {
        let value = value.replace("@PWHOME@", pw_home);
        let pmdk = parse_pmdk_out(&out, pw_home);
        if pmdk.get("poolset-dir").is_none_or(|d| d.starts_with('/')) {
            problem(format!(
                "PMDK's poolset-dir is absolute, no deviation: {pmdk:?}"
            ));
        }
        if code != Some(3) || !stdout.is_empty() {
            problem(format!("expected refusal, got {code:?}, stdout {stdout:?}"));
        }
        if !stderr.contains(&format!("poolset-dir {value:?} is not an absolute path")) {
            problem(format!("stderr {stderr:?} does not name {value:?}"));
        }
    } else {
        let pmdk = parse_pmdk_out(&out, pw_home);
        let ours = parse_dump(&output.stdout);
        if code != Some(0) || !stderr.is_empty() {
            problem(format!("expected success, got {code:?}, stderr {stderr:?}"));
        }
        if ours.keys().map(String::as_str).collect::<Vec<_>>() != {
            let mut sorted = DUMP_KEYS;
            sorted.sort_unstable();
            sorted
        } {
            problem(format!("dump keys {:?}", ours.keys().collect::<Vec<_>>()));
        }
        if pmdk.len() != DUMP_KEYS.len() {
            problem(format!("PMDK output not understood: {pmdk:?}"));
        }
        for (key, value) in &pmdk {
            if ours.get(key) != Some(value) {
                problem(format!("{key}: PMDK {value:?}, rpmemd {:?}", ours.get(key)));
            }
        }
    }
    problems
}

#[test]
fn pmdk_rpmemd_config_cases() {
    let dir = reference_dir();
    assert!(dir.is_dir(), "reference cases missing at {}", dir.display());
    let pw_home = passwd_home();
    let cases = read_cases(&dir);
    let expected_outs = fs::read_dir(dir.join("expected"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "out"))
        .count();
    assert!(cases.len() >= 29, "only {} cases read", cases.len());
    assert_eq!(
        cases.len(),
        expected_outs,
        "cases.list and expected/ disagree"
    );
    let problems: Vec<String> = cases
        .iter()
        .flat_map(|case| check_pmdk_case(&dir, case, &pw_home))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_deviation_names_a_real_case() {
    let cases = read_cases(&reference_dir());
    for (id, _) in REFUSED_RELATIVE_POOLSET_DIR {
        assert!(cases.iter().any(|c| c.id == id), "{id}");
    }
}

/// A scratch directory with a home directory, a global file and a user file.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(global: Option<&str>, user: Option<&str>) -> Scratch {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let scratch = Scratch { dir };
        assert!(fs::create_dir(scratch.home()).is_ok());
        if let Some(global) = global {
            scratch.write("global.conf", global);
        }
        if let Some(user) = user {
            scratch.write("home/.rpmemd.conf", user);
        }
        scratch
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    fn write(&self, name: &str, content: &str) {
        let path = self.path().join(name);
        assert!(fs::write(&path, content).is_ok(), "{}", path.display());
    }

    /// `--dump-config` with these args; the placeholder `{home}` in args is the home dir.
    fn run(&self, args: &[&str]) -> Output {
        let home = self.home().display().to_string();
        let mut args: Vec<String> = args.iter().map(|a| a.replace("{home}", &home)).collect();
        args.push("--dump-config".to_owned());
        run(
            self.path(),
            Some(&home),
            Some(&self.path().join("global.conf")),
            &args,
        )
    }

    fn dump(&self, args: &[&str]) -> BTreeMap<String, String> {
        let output = self.run(args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
        parse_dump(&output.stdout)
    }

    fn assert_values(&self, args: &[&str], expected: &[(&str, &str)]) {
        let home = self.home().display().to_string();
        let dump = self.dump(args);
        for (key, value) in expected {
            let value = value.replace("{home}", &home);
            assert_eq!(dump.get(*key), Some(&value), "{key} in {dump:?}");
        }
    }
}

#[test]
fn defaults_without_any_file() {
    let scratch = Scratch::new(None, None);
    scratch.assert_values(
        &[],
        &[
            ("log-file", "/var/log/rpmemd.log"),
            ("poolset-dir", "{home}"),
            ("persist-apm", "no"),
            ("persist-general", "yes"),
            ("use-syslog", "yes"),
            ("log-level", "err"),
            ("nthreads", "0"),
        ],
    );
}

#[test]
fn dump_config_prints_exactly_the_seven_keys_in_order() {
    let scratch = Scratch::new(None, None);
    let output = scratch.run(&["-t", "8"]);
    let stdout = text(&output.stdout);
    let keys: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        .collect();
    assert_eq!(keys, DUMP_KEYS);
    assert_eq!(stdout.lines().count(), DUMP_KEYS.len());
    assert!(stdout.ends_with("nthreads = 8\n"), "{stdout}");
}

#[rstest]
#[case::global_only(Some("log-level = info\n"), None, &[], &[("log-level", "info")])]
#[case::user_beats_global(
    Some("log-level = info\n"), Some("log-level = notice\n"), &[], &[("log-level", "notice")])]
#[case::cli_beats_user(
    Some("log-level = info\n"), Some("log-level = notice\n"), &["--log-level=debug"],
    &[("log-level", "debug")])]
#[case::keys_merge(
    Some("log-file = /g/log\npoolset-dir = /g\npersist-apm = yes\n"),
    Some("poolset-dir = /u\n"),
    &["--persist-general"],
    &[("log-file", "/g/log"), ("poolset-dir", "/u"), ("persist-apm", "yes"),
      ("persist-general", "yes")])]
#[case::cli_cannot_turn_off(
    Some("persist-apm = yes\n"), None, &["--persist-general"], &[("persist-apm", "yes")])]
#[case::custom_file_replaces_both(
    Some("log-level = info\n"), Some("log-level = notice\npoolset-dir = /u\n"),
    &["-c", "custom.conf"], &[("log-level", "warn"), ("poolset-dir", "{home}")])]
#[case::custom_file_then_cli(
    Some("log-level = info\n"), None, &["--config", "custom.conf", "--log-level", "debug"],
    &[("log-level", "debug")])]
#[case::log_file_turns_syslog_off(
    Some("use-syslog = yes\n"), Some("log-file = /u/log\n"), &[],
    &[("log-file", "/u/log"), ("use-syslog", "no")])]
#[case::later_use_syslog_wins(
    Some("log-file = /g/log\n"), Some("use-syslog = yes\n"), &[],
    &[("log-file", "/g/log"), ("use-syslog", "yes")])]
#[case::cli_log_file_beats_file_syslog(
    None, Some("use-syslog = yes\n"), &["--log-file=/c/log"],
    &[("log-file", "/c/log"), ("use-syslog", "no")])]
#[case::cli_use_syslog_wins_wherever(
    None, None, &["--use-syslog", "--log-file", "/c/log"],
    &[("log-file", "/c/log"), ("use-syslog", "yes")])]
#[case::repeated_lines_last_wins(
    Some("log-level = info\nlog-level = err\n"), None, &[], &[("log-level", "err")])]
#[case::nthreads(None, None, &["--nthreads", "12"], &[("nthreads", "12")])]
fn precedence(
    #[case] global: Option<&str>,
    #[case] user: Option<&str>,
    #[case] args: &[&str],
    #[case] expected: &[(&str, &str)],
) {
    let scratch = Scratch::new(global, user);
    scratch.write("custom.conf", "log-level = warn\n");
    scratch.assert_values(args, expected);
}

#[rstest]
#[case::default_is_home(None, "{home}")]
#[case::alone(Some("$HOME"), "{home}")]
#[case::slash(Some("$HOME/pools"), "{home}/pools")]
#[case::dash(Some("$HOME-pools"), "{home}-pools")]
#[case::twice(Some("$HOME/$HOME"), "{home}/{home}")]
#[case::sticky_in_absolute(Some("/srv/$HOMEx"), "/srv/$HOMEx")]
#[case::digit_in_absolute(Some("/srv/$HOME1/a"), "/srv/$HOME1/a")]
#[case::lowercase(Some("/srv/$home"), "/srv/$home")]
fn home_substitution(#[case] value: Option<&str>, #[case] expected: &str) {
    // Through the user file ...
    let scratch = Scratch::new(
        None,
        value.map(|v| format!("poolset-dir = {v}\n")).as_deref(),
    );
    scratch.assert_values(&[], &[("poolset-dir", expected)]);
    // ... and through the command line.
    let scratch = Scratch::new(None, None);
    let arg = value.map(|v| format!("--poolset-dir={v}"));
    let args: Vec<&str> = arg.iter().map(String::as_str).collect();
    scratch.assert_values(&args, &[("poolset-dir", expected)]);
}

#[test]
fn crlf_file() {
    let scratch = Scratch::new(
        None,
        Some("# comment\r\nlog-file = /crlf/log\r\n\r\nlog-level = info\r\npersist-apm=yes\r\n"),
    );
    scratch.assert_values(
        &[],
        &[
            ("log-file", "/crlf/log"),
            ("log-level", "info"),
            ("persist-apm", "yes"),
        ],
    );
}

#[test]
fn comments_anywhere_and_blanks() {
    let scratch = Scratch::new(
        None,
        Some(
            "#top\n   # indented\n\t\n poolset-dir\t=\t/p/q#glued comment\n\
             log-file = /l # after value\nlog-level=notice#x\n# log-level = bogus\n",
        ),
    );
    scratch.assert_values(
        &[],
        &[
            ("poolset-dir", "/p/q"),
            ("log-file", "/l"),
            ("log-level", "notice"),
        ],
    );
}

#[rstest]
#[case::user_file(None, Some("poolset-dir = relative/dir\n"), &[], "relative/dir")]
#[case::global_file(Some("poolset-dir = ./x\n"), None, &[], "./x")]
#[case::cli(None, None, &["--poolset-dir", "pools"], "pools")]
#[case::sticky(None, None, &["--poolset-dir=$HOMEx"], "$HOMEx")]
#[case::prefix(None, None, &["--poolset-dir=p$HOME"], "p{home}")]
fn relative_poolset_dir_is_refused(
    #[case] global: Option<&str>,
    #[case] user: Option<&str>,
    #[case] args: &[&str],
    #[case] value: &str,
) {
    let scratch = Scratch::new(global, user);
    let output = scratch.run(args);
    let value = value.replace("{home}", &scratch.home().display().to_string());
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("poolset-dir {value:?} is not an absolute path")),
        "{stderr}"
    );
}

#[test]
fn missing_custom_file_is_refused() {
    let scratch = Scratch::new(Some("log-level = info\n"), None);
    let output = scratch.run(&["-c", "missing.conf"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("missing.conf: No such file or directory"),
        "{stderr}"
    );
}

#[rstest]
#[case::global_bad_line(Some("log-level = info\nbogus\n"), None, "global.conf:2", "bogus")]
#[case::user_bad_key(
    None,
    Some("\n\nLog-Level = info\n"),
    ".rpmemd.conf:3",
    "Log-Level = info"
)]
#[case::user_bad_bool(
    None,
    Some("use-syslog = true\r\n"),
    ".rpmemd.conf:1",
    "use-syslog = true"
)]
#[case::user_empty_value(None, Some("log-file = # x\n"), ".rpmemd.conf:1", "log-file = # x")]
#[case::cli_key_in_file(None, Some("nthreads = 2\n"), ".rpmemd.conf:1", "nthreads = 2")]
fn invalid_lines_are_refused(
    #[case] global: Option<&str>,
    #[case] user: Option<&str>,
    #[case] place: &str,
    #[case] line: &str,
) {
    let scratch = Scratch::new(global, user);
    // Even when the command line sets the same key.
    let output = scratch.run(&["--log-level=err", "--use-syslog"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Invalid config file line at ") && stderr.contains(place),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("\n{line}\n")), "{stderr}");
}

#[test]
fn unreadable_optional_file_is_refused() {
    let scratch = Scratch::new(None, None);
    // The global configuration "file" is a directory.
    assert!(fs::create_dir(scratch.path().join("global.conf")).is_ok());
    let output = scratch.run(&[]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("global.conf"), "{stderr}");
}

#[test]
fn unset_home_uses_the_password_database() {
    let scratch = Scratch::new(None, None);
    let output = run(scratch.path(), None, None, &["--dump-config".to_owned()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let dump = parse_dump(&output.stdout);
    assert_eq!(dump.get("poolset-dir"), Some(&passwd_home()));
}

#[rstest]
#[case::unknown_option(&["--bogus"])]
#[case::positional(&["extra"])]
#[case::nthreads_word(&["-t", "abc"])]
#[case::nthreads_negative(&["-t", "-1"])]
#[case::bad_level(&["--log-level=Invalid"])]
#[case::empty_log_file(&["--log-file="])]
#[case::flag_with_value(&["--use-syslog=yes"])]
#[case::force_without_remove(&["-f"])]
#[case::pool_set_without_remove(&["-s"])]
fn usage_errors(#[case] args: &[&str]) {
    let scratch = Scratch::new(None, None);
    let output = scratch.run(args);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());
    assert!(!output.stderr.is_empty());
}

#[test]
fn nthreads_error_names_the_value() {
    let scratch = Scratch::new(None, None);
    let output = scratch.run(&["--nthreads=-1"]);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("invalid number of threads -- '-1'"),
        "{stderr}"
    );
}

#[test]
fn version_and_help_go_to_stdout_and_win() {
    let scratch = Scratch::new(None, None);
    // Even with a configuration that would be refused.
    let version = scratch.run(&["-c", "missing.conf", "-V"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(version.stderr.is_empty());
    assert_eq!(
        text(&version.stdout),
        format!("rpmemd version {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = scratch.run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let stdout = text(&help.stdout);
    assert!(stdout.starts_with("usage: rpmemd [--version] [--help] [<args>]\n"));
    for option in ["-s, --pool-set", "--dump-config", "-t, --nthreads <num>"] {
        assert!(stdout.contains(option), "{option}");
    }
}
