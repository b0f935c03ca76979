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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/pmdk-1.12.1/tests/rpmemd_config")
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
        let expected = format!(
            "poolset-dir {value:?} (set by the command-line option --poolset-dir) is not an \
             absolute path"
        );
        if !stderr.contains(&expected) {
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

    /// `--check-config` with these args (`{home}` replaced as in [`Scratch::run`]).
    fn check(&self, args: &[&str]) -> Output {
        let home = self.home().display().to_string();
        let mut args: Vec<String> = args.iter().map(|a| a.replace("{home}", &home)).collect();
        args.push("--check-config".to_owned());
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
#[case::user_file(None, Some("poolset-dir = relative/dir\n"), &[], "relative/dir",
    "{home}/.rpmemd.conf:1")]
#[case::global_file(Some("\npoolset-dir = ./x\n"), None, &[], "./x", "{dir}/global.conf:2")]
#[case::cli(None, None, &["--poolset-dir", "pools"], "pools",
    "the command-line option --poolset-dir")]
#[case::sticky(None, None, &["--poolset-dir=$HOMEx"], "$HOMEx",
    "the command-line option --poolset-dir")]
#[case::prefix(None, None, &["--poolset-dir=p$HOME"], "p{home}",
    "the command-line option --poolset-dir")]
fn relative_poolset_dir_is_refused(
    #[case] global: Option<&str>,
    #[case] user: Option<&str>,
    #[case] args: &[&str],
    #[case] value: &str,
    #[case] origin: &str,
) {
    let scratch = Scratch::new(global, user);
    let output = scratch.run(args);
    let home = scratch.home().display().to_string();
    let dir = scratch.path().display().to_string();
    let value = value.replace("{home}", &home);
    let origin = origin.replace("{home}", &home).replace("{dir}", &dir);
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "poolset-dir {value:?} (set by {origin}) is not an absolute path"
        )),
        "{stderr}"
    );
}

#[rstest]
#[case::alone("$HOME/.rpmemd.log", "{home}/.rpmemd.log")]
#[case::nested("$HOME/logs/$HOME-x.log", "{home}/logs/{home}-x.log")]
#[case::sticky_in_absolute("/var/log/$HOMEx.log", "/var/log/$HOMEx.log")]
fn home_is_replaced_in_log_file(#[case] value: &str, #[case] expected: &str) {
    let scratch = Scratch::new(None, Some(&format!("log-file = {value}\n")));
    scratch.assert_values(&[], &[("log-file", expected), ("use-syslog", "no")]);
    let scratch = Scratch::new(None, None);
    scratch.assert_values(&[&format!("--log-file={value}")], &[("log-file", expected)]);
}

/// A relative `log-file` would be opened relative to whatever directory rpmemd starts in (the
/// home directory under ssh, anything in a test): refused like a relative `poolset-dir`, by
/// every request that reads the configuration, naming where it was set.
#[rstest]
#[case::user_file(Some("poolset-dir = /\nlog-file = rpmemd.log\n"), &[], "rpmemd.log",
    "{home}/.rpmemd.conf:2")]
#[case::cli(None, &["--log-file", "logs/r.log"], "logs/r.log",
    "the command-line option --log-file")]
#[case::sticky(None, &["--log-file=$HOMEx/r.log"], "$HOMEx/r.log",
    "the command-line option --log-file")]
fn relative_log_file_is_refused(
    #[case] user: Option<&str>,
    #[case] args: &[&str],
    #[case] value: &str,
    #[case] origin: &str,
) {
    let scratch = Scratch::new(None, user);
    let home = scratch.home().display().to_string();
    let origin = origin.replace("{home}", &home);
    let expected = format!("log-file {value:?} (set by {origin}) is not an absolute path");
    // --dump-config
    let output = scratch.run(args);
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    assert!(
        text(&output.stderr).contains(&expected),
        "{}",
        text(&output.stderr)
    );
    // --check-config
    let output = scratch.check(args);
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    assert!(
        text(&output.stderr).contains(&expected),
        "{}",
        text(&output.stderr)
    );
    // A session: the start-up status word EINVAL, nothing else on stdout.
    let mut session_args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    session_args.push("--poolset-dir=/".to_owned());
    let output = run(
        scratch.path(),
        Some(&home),
        Some(&scratch.path().join("global.conf")),
        &session_args,
    );
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(output.stdout, [22, 0, 0, 0]);
    assert!(
        text(&output.stderr).contains(&expected),
        "{}",
        text(&output.stderr)
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

// ------------------------------------------------------------------ --check-config

/// The configuration example of a document: the fenced block that sets
/// `log-file = $HOME/.rpmemd.log`, exactly as written there.
fn documented_example(doc: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(doc);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut block: Option<Vec<&str>> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match block.as_mut() {
            None if trimmed.starts_with("```") => block = Some(Vec::new()),
            None => {}
            Some(lines) if trimmed.starts_with("```") => {
                if lines
                    .iter()
                    .any(|l| l.trim() == "log-file = $HOME/.rpmemd.log")
                {
                    let mut example: String = lines
                        .iter()
                        .map(|l| format!("{}\n", l.trim_start()))
                        .collect();
                    example.truncate(example.trim_end().len());
                    example.push('\n');
                    return example;
                }
                block = None;
            }
            Some(lines) => lines.push(line),
        }
    }
    panic!("{doc} has no configuration example with log-file = $HOME/.rpmemd.log");
}

/// The size of the pool the session test creates (the smallest part).
const EXAMPLE_POOL_SIZE: u64 = 2 << 20;

/// Runs rpmemd as ssh would start it for a session, with this HOME and no global file, and
/// drives CREATE and CLOSE through the out-of-band client machine. Gives the exit status
/// and stderr.
fn serve_create_and_close(home: &Path, global: &Path, name: &str) -> (Option<i32>, String) {
    use rpmem_core::oob::{Client, ClientEvent, CreateRequest};
    use rpmem_core::wire::oob::{PoolDesc, Provider};
    use std::io::{Read, Write};
    use std::process::Stdio;

    let mut child = Command::new(BIN)
        .current_dir(home)
        .env("HOME", home)
        .env("RPMEMD_GLOBAL_CONFIG", global)
        .env("PMEM_IS_PMEM_FORCE", "0")
        .env_remove("RPMEMD_SYSLOG_SOCKET")
        .env_remove("SSH_CONNECTION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let mut client = Client::new();
    let mut pending = Vec::new();
    let mut next_event = |client: &mut Client| -> Option<ClientEvent> {
        loop {
            if !pending.is_empty() {
                let (used, event) = client.handle_input(&pending).ok()?;
                pending.drain(..used);
                if event.is_some() {
                    return event;
                }
            }
            let mut buf = [0u8; 4096];
            let n = stdout.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return None;
            }
            pending.extend_from_slice(&buf[..n]);
        }
    };
    let mut events = Vec::new();
    if next_event(&mut client) == Some(ClientEvent::Ready) {
        let mut attr = rpmem_core::attr::PoolAttr::ZERO;
        attr.signature = *b"EXAMPLE\0";
        attr.major = 1;
        let req = CreateRequest {
            pool_size: EXAMPLE_POOL_SIZE,
            nlanes: 1,
            provider: Provider::TCP,
            buff_size: 8192,
            attr,
            pool_desc: PoolDesc::from_text(name).unwrap_or_else(|e| panic!("{e}")),
        };
        let bytes = client.send_create(&req).map(<[u8]>::to_vec);
        let bytes = bytes.unwrap_or_else(|e| panic!("{e}"));
        assert!(stdin.write_all(&bytes).is_ok());
        let created = next_event(&mut client);
        let ok = matches!(created, Some(ClientEvent::Created(_)));
        events.push(format!("{created:?}"));
        if ok {
            let bytes = client.send_close(0).map(<[u8]>::to_vec);
            let bytes = bytes.unwrap_or_else(|e| panic!("{e}"));
            assert!(stdin.write_all(&bytes).is_ok());
            let closed = next_event(&mut client);
            assert_eq!(closed, Some(ClientEvent::Closed), "{events:?}");
        }
    }
    drop(stdin);
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    (status.code(), format!("{stderr}{events:?}"))
}

/// README.md and docs/deployment.md tell administrators to use this configuration; it must
/// pass `--check-config` and serve a session, logging to `$HOME/.rpmemd.log` (rpmemd used to
/// take `$HOME` in `log-file` literally and fail every session).
#[rstest]
#[case::readme("README.md")]
#[case::deployment("docs/deployment.md")]
fn documented_example_configuration_passes_the_check_and_serves_a_session(#[case] doc: &str) {
    let example = documented_example(doc);
    assert!(
        example.contains("poolset-dir = $HOME/poolsets\n"),
        "{example}"
    );
    let scratch = Scratch::new(None, Some(&example));
    let home = scratch.home();
    let global = scratch.path().join("global.conf");
    assert!(fs::create_dir(home.join("poolsets")).is_ok());
    let log = home.join(".rpmemd.log");

    let output = scratch.check(&[]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    let conf = home.join(".rpmemd.conf");
    for expected in [
        format!("  {}: read\n", conf.display()),
        format!("  log-file = {}   ({}:2)\n", log.display(), conf.display()),
        format!(
            "  ok: log file {} opens for appending (created it)\n",
            log.display()
        ),
        format!(
            "  ok: pool set directory {} exists and is a readable directory\n",
            home.join("poolsets").display()
        ),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} in:\n{stdout}");
    }
    assert!(stdout.ends_with("configuration OK\n"), "{stdout}");
    assert!(
        log.exists(),
        "the check creates the log file as a session would"
    );

    let part = home.join("example.part");
    let set = format!("PMEMPOOLSET\n{EXAMPLE_POOL_SIZE} {}\n", part.display());
    assert!(fs::write(home.join("poolsets/example.set"), set).is_ok());
    let (status, stderr) = serve_create_and_close(&home, &global, "example.set");
    assert_eq!(status, Some(0), "{stderr}");
    assert!(part.exists(), "the pool was created");
    let logged = fs::read_to_string(&log).unwrap_or_default();
    assert!(logged.contains("notice: create request:"), "{logged}");
    assert!(logged.contains("notice: user: "), "{logged}");
}

#[test]
fn check_config_refuses_a_missing_poolset_dir_naming_the_line() {
    let scratch = Scratch::new(None, None);
    let missing = scratch.home().join("no-such-dir");
    scratch.write(
        "home/.rpmemd.conf",
        &format!(
            "log-file = $HOME/r.log\n# pool sets\npoolset-dir = {}\n",
            missing.display()
        ),
    );
    // --dump-config only prints what is configured ...
    assert_eq!(scratch.run(&[]).status.code(), Some(0));
    // ... --check-config looks.
    let output = scratch.check(&[]);
    assert_eq!(output.status.code(), Some(3));
    let conf = scratch.home().join(".rpmemd.conf");
    let expected = format!(
        "poolset-dir {} (set by {}:3) does not exist",
        missing.display(),
        conf.display()
    );
    assert_eq!(text(&output.stderr), format!("rpmemd: {expected}\n"));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("  FAILED: {expected}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("  ok: log file "), "{stdout}");
    assert!(
        stdout.ends_with("configuration NOT OK: 1 check(s) failed (exit status 3)\n"),
        "{stdout}"
    );
}

#[test]
fn check_config_refuses_a_poolset_dir_that_is_a_file() {
    let scratch = Scratch::new(None, None);
    scratch.write("file", "");
    let file = scratch.path().join("file");
    let output = scratch.check(&[
        "--poolset-dir",
        &file.display().to_string(),
        "--log-file=$HOME/r.log",
    ]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        text(&output.stderr),
        format!(
            "rpmemd: poolset-dir {} (set by the command-line option --poolset-dir) is not a \
             directory (it is a regular file)\n",
            file.display()
        )
    );
}

#[test]
fn check_config_refuses_a_log_file_that_cannot_be_opened() {
    let scratch = Scratch::new(
        None,
        Some("poolset-dir = $HOME\nlog-file = $HOME/no/dir/r.log\n"),
    );
    let output = scratch.check(&[]);
    assert_eq!(output.status.code(), Some(4));
    let log = scratch.home().join("no/dir/r.log");
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "rpmemd: log-file {} (set by {}:2): cannot open log file {}: ",
            log.display(),
            scratch.home().join(".rpmemd.conf").display(),
            log.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn check_config_checks_syslog_when_it_is_used() {
    use std::os::unix::net::UnixDatagram;
    let scratch = Scratch::new(None, Some("poolset-dir = $HOME\nuse-syslog = yes\n"));
    let socket = scratch.path().join("syslog.sock");
    let home = scratch.home().display().to_string();
    let global = scratch.path().join("global.conf");
    let check = |socket: &Path| {
        Command::new(BIN)
            .current_dir(scratch.path())
            .arg("--check-config")
            .env("HOME", &home)
            .env("RPMEMD_GLOBAL_CONFIG", &global)
            .env("RPMEMD_SYSLOG_SOCKET", socket)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // Nobody listens: exit 4, naming the socket and why.
    let output = check(&socket);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "use-syslog = yes (set by {home}/.rpmemd.conf:2), but cannot reach syslog at {} \
             (it does not exist)",
            socket.display()
        )),
        "{stderr}"
    );
    // A listening socket passes, and the check sends it nothing.
    let server = UnixDatagram::bind(&socket).unwrap_or_else(|e| panic!("{e}"));
    let output = check(&socket);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "  ok: syslog is reachable at {}\n",
            socket.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("  skipped: log file /var/log/rpmemd.log: not used"),
        "{stdout}"
    );
    assert!(server.set_nonblocking(true).is_ok());
    let mut buf = [0u8; 64];
    assert!(
        server.recv(&mut buf).is_err(),
        "nothing is logged by a check"
    );
}

#[test]
fn check_config_reports_an_invalid_line_like_every_other_request() {
    let scratch = Scratch::new(None, Some("poolset-dir = $HOME\nuse-syslog = true\n"));
    let output = scratch.check(&[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "rpmemd: Invalid config file line at {}:2: invalid value for use-syslog",
            scratch.home().join(".rpmemd.conf").display()
        )),
        "{stderr}"
    );
}
