//! `rpmemd --list` through the built binary: the pool set files of `poolset-dir`, nested ones
//! too, by the names a client passes, with their pool size or parse error; what is not a pool
//! set file, or leads out of the directory, is not listed; names are escaped; a missing
//! `poolset-dir` fails with a message.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_rpmemd");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let env = Env { dir };
        assert!(fs::create_dir(env.sets()).is_ok());
        let conf = format!(
            "poolset-dir = {}\nuse-syslog = no\nlog-file = {}\nlog-level = info\n",
            env.sets().display(),
            env.path("rpmemd.log").display()
        );
        assert!(fs::write(env.path("rpmemd.conf"), conf).is_ok());
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sets(&self) -> PathBuf {
        self.path("sets")
    }

    fn write(&self, rel: impl AsRef<Path>, text: &[u8]) {
        let path = self.sets().join(rel);
        if let Some(parent) = path.parent() {
            assert!(fs::create_dir_all(parent).is_ok());
        }
        assert!(fs::write(&path, text).is_ok(), "{}", path.display());
    }

    fn rpmemd(&self, args: &[&str]) -> Output {
        let out = Command::new(BIN)
            .arg("-c")
            .arg(self.path("rpmemd.conf"))
            .args(args)
            .output();
        out.unwrap_or_else(|e| panic!("running rpmemd: {e}"))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn lists_nested_pool_sets_by_their_client_names() {
    let env = Env::new();
    let part = env.path("part");
    let set = |size: &str| format!("PMEMPOOLSET\n{size} {}\n", part.display()).into_bytes();
    env.write("top.set", &set("8M"));
    env.write("a/b/c/deep.set", &set("4M"));
    env.write(
        "nohdrs.set",
        format!("PMEMPOOLSET\nOPTION NOHDRS\n16M {}\n", part.display()).as_bytes(),
    );
    // Not pool set files.
    env.write("notes.txt", b"hello\n");
    env.write("a/empty", b"");
    env.write("almost.set", b"PMEMPOOL");
    // An invalid one is listed with its error and line.
    env.write(
        "a/bad.set",
        format!("PMEMPOOLSET\n4x {}\n", part.display()).as_bytes(),
    );
    // A name with a newline, a tab, a backslash and an escape sequence.
    env.write("new\nline\t\\\x1b[2J.set", &set("8M"));
    // Symbolic links: inside (listed under the link's name), outside (not listed), and a
    // link to a directory (not descended into).
    fs::write(env.path("outside.set"), set("8M")).unwrap_or_else(|e| panic!("{e}"));
    symlink("../outside.set", env.sets().join("out-link.set")).unwrap_or_else(|e| panic!("{e}"));
    symlink(env.path("outside.set"), env.sets().join("abs-link.set"))
        .unwrap_or_else(|e| panic!("{e}"));
    symlink("top.set", env.sets().join("in-link.set")).unwrap_or_else(|e| panic!("{e}"));
    symlink("..", env.sets().join("parent")).unwrap_or_else(|e| panic!("{e}"));
    symlink("a", env.sets().join("a-link")).unwrap_or_else(|e| panic!("{e}"));

    let out = env.rpmemd(&["--list"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}{}",
        out.status,
        text(&out.stderr)
    );
    let dir = env.sets();
    let expected = format!(
        "rpmemd-list\t1\t{}\n\
         set\ta/b/c/deep.set\tok\t4194304\t1\t-\n\
         set\ta/bad.set\tinvalid\t2\tincorrect format of size\n\
         set\tin-link.set\tok\t8388608\t1\t-\n\
         set\tnew\\nline\\t\\\\\\x1b[2J.set\tok\t8388608\t1\t-\n\
         set\tnohdrs.set\tok\t16777216\t1\tNOHDRS\n\
         set\ttop.set\tok\t8388608\t1\t-\n\
         end\t6\n",
        dir.display()
    );
    assert_eq!(stdout, expected);
    assert!(!stdout.contains("outside"), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    // `-l` is the same.
    assert_eq!(text(&env.rpmemd(&["-l"]).stdout), expected);
}

#[test]
fn a_name_that_is_not_utf8_is_listed_escaped_as_unusable() {
    let env = Env::new();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.set");
    env.write(name, b"PMEMPOOLSET\n8M /p\n");
    let out = env.rpmemd(&["--list"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("set\tcaf\\xe9.set\tinvalid\t-\tthe name is not UTF-8"),
        "{stdout}"
    );
    assert!(!out.stdout.contains(&0xe9), "the raw byte is never written");
}

#[test]
fn an_empty_directory_lists_nothing() {
    let env = Env::new();
    let out = env.rpmemd(&["--list"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        format!("rpmemd-list\t1\t{}\nend\t0\n", env.sets().display())
    );
}

#[test]
fn too_deep_directories_make_the_list_incomplete() {
    let env = Env::new();
    let mut deep = PathBuf::new();
    for _ in 0..=rpmemd::list::MAX_DEPTH {
        deep.push("d");
    }
    env.write(deep.join("x.set"), b"PMEMPOOLSET\n8M /p\n");
    env.write("d/y.set", b"PMEMPOOLSET\n8M /p\n");
    let out = env.rpmemd(&["--list"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("set\td/y.set\tok"), "{stdout}");
    assert!(!stdout.contains("x.set"), "{stdout}");
    assert!(
        stdout.contains("\nincomplete\tdirectories more than 16 levels below poolset-dir"),
        "{stdout}"
    );
    assert!(stdout.ends_with("end\t1\n"), "{stdout}");
}

#[test]
fn a_missing_poolset_dir_fails_with_a_message() {
    let env = Env::new();
    let missing = env.path("nope");
    let out = env.rpmemd(&["--list", "--poolset-dir", &missing.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rpmemd: cannot list the pool sets")
            && stderr.contains(&missing.display().to_string())
            && stderr.contains("No such file or directory")
            && stderr.contains("--poolset-dir"),
        "{stderr}"
    );
}

#[test]
fn list_and_remove_exclude_each_other() {
    let env = Env::new();
    let out = env.rpmemd(&["--list", "--remove", "x.set"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
