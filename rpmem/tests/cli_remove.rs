//! `rpmem remove` and `rpmem::remove` against the real rpmemd in local mode, configured with
//! the configuration docs/deployment.md recommends (`$HOME/poolsets`, `$HOME/.rpmemd.log`,
//! HOME a scratch directory): a forced removal of a pool in use must fail and list what was
//! left, not print "removed" while the part files are still there.

mod common;

use common::{rpmemd, RPMEM};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use rpmem::{Error, Launch, Options, PoolAttr, Region, RemotePool, REMOVE_FORCE, REMOVE_POOL_SET};

/// docs/rpmem-cli.md: the operation failed on the target.
const EXIT_FAILED: i32 = 1;
const PART_SIZE: u64 = 2 << 20;

/// The configuration example of docs/deployment.md, exactly as written there.
fn deployment_example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deployment.md");
    let text = fs::read_to_string(&path).expect("docs/deployment.md");
    let start = text
        .find("```text\n   poolset-dir = $HOME/poolsets")
        .expect("the configuration example");
    let body = &text[start + "```text\n".len()..];
    let end = body.find("```").expect("the end of the example");
    let example: String = body[..end]
        .lines()
        .map(|l| format!("{}\n", l.trim_start()))
        .collect();
    assert!(
        example.contains("log-file = $HOME/.rpmemd.log\n"),
        "{example}"
    );
    example
}

/// A target host as the deployment guide sets one up, with HOME a scratch directory.
struct Host {
    home: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let home = tempfile::tempdir().expect("tempdir");
        let host = Host { home };
        fs::write(host.path(".rpmemd.conf"), deployment_example()).expect("config");
        fs::create_dir(host.path("poolsets")).expect("mkdir poolsets");
        host
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// Writes pool set `name` (in `poolsets`) with two parts in HOME; gives their paths.
    fn poolset(&self, name: &str) -> Vec<PathBuf> {
        let parts: Vec<PathBuf> = (0..2)
            .map(|i| self.path(&format!("{name}.part{i}")))
            .collect();
        let mut text = String::from("PMEMPOOLSET\n");
        for p in &parts {
            text.push_str(&format!("{PART_SIZE} {}\n", p.display()));
        }
        fs::write(self.path("poolsets").join(name), text).expect("pool set");
        parts
    }

    /// The command rpmemd runs as, for the library: this HOME, no global file.
    fn command(&self) -> String {
        format!(
            "env HOME={} RPMEMD_GLOBAL_CONFIG={} {}",
            self.home.path().display(),
            self.path("no-global.conf").display(),
            rpmemd().display()
        )
    }

    fn options(&self) -> Options {
        Options::builder()
            .launch(Launch::Local)
            .command(self.command())
            .control_timeout(Duration::from_secs(30))
            .build()
    }

    /// `rpmem ARGS` in local mode, with this HOME, as a user on the host would run it.
    fn rpmem(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(RPMEM);
        cmd.args(args);
        for var in [
            "RPMEM_SSH",
            "RPMEM_MAX_NLANES",
            "RPMEM_WORK_QUEUE_SIZE",
            "RPMEM_SPIN_US",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.home.path())
            .env("RPMEMD_GLOBAL_CONFIG", self.path("no-global.conf"))
            .env("RPMEM_LAUNCH", "local")
            .env("RPMEM_CMD", rpmemd())
            .env_remove("RPMEMD_SYSLOG_SOCKET")
            .output()
            .expect("running rpmem")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn forced_remove_of_a_pool_in_use_fails_and_lists_what_was_left() {
    let host = Host::new();
    let parts = host.poolset("busy.set");
    let set_file = host.path("poolsets/busy.set");
    let opts = host.options();
    let region = Arc::new(Region::new(2 * PART_SIZE as usize - 4096).expect("region"));
    let attr = PoolAttr {
        signature: *b"BUSYPOOL",
        major: 1,
        ..PoolAttr::ZERO
    };
    let pool = RemotePool::create("localhost", "busy.set", region, 1, Some(&attr), &opts)
        .expect("create with the documented configuration");
    assert!(parts.iter().all(|p| p.exists()));
    assert!(
        host.path(".rpmemd.log").exists(),
        "logged to $HOME/.rpmemd.log"
    );

    // The tool: non-zero, rpmemd's list of what was left, no "removed".
    let out = host.rpmem(&["remove", "localhost", "busy.set", "--force", "--pool-set"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(EXIT_FAILED), "{stdout}{stderr}");
    assert!(!stdout.contains("removed the pool"), "{stdout}");
    assert!(
        stderr.contains("removing 'busy.set' left files behind"),
        "{stderr}"
    );
    for part in &parts {
        assert!(
            stderr.contains(&format!("not removed: {}: ", part.display())),
            "{part:?} in {stderr}"
        );
    }
    assert!(stderr.contains("is in use by another process"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "not removed: pool set file {}",
            set_file.display()
        )),
        "{stderr}"
    );
    assert!(parts.iter().all(|p| p.exists()), "nothing was removed");
    assert!(
        set_file.exists(),
        "the pool set file is kept while parts are left"
    );

    // The library: an error that lists the parts.
    let e = rpmem::remove(
        "localhost",
        "busy.set",
        REMOVE_FORCE | REMOVE_POOL_SET,
        &opts,
    )
    .expect_err("a forced remove of a pool in use must fail");
    let Error::RemoveFailed { message, code, .. } = &e else {
        panic!("expected RemoveFailed, got {e}");
    };
    assert_ne!(*code, 0);
    for part in &parts {
        assert!(message.contains(&part.display().to_string()), "{e}");
    }

    // Once the pool is closed, the same command removes everything.
    pool.close().expect("close");
    let out = host.rpmem(&["remove", "localhost", "busy.set", "--force", "--pool-set"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("removed the pool"),
        "{}",
        text(&out.stdout)
    );
    assert!(parts.iter().all(|p| !p.exists()));
    assert!(!set_file.exists());
    let log = fs::read_to_string(host.path(".rpmemd.log")).unwrap_or_default();
    assert!(log.contains("left files behind"), "{log}");
    assert!(
        log.contains("notice: removed 'busy.set': 2 part(s) removed, pool set file removed"),
        "{log}"
    );
}

#[test]
fn forced_remove_of_nothing_succeeds_and_plain_remove_of_nothing_fails() {
    let host = Host::new();
    host.poolset("gone.set");
    // No part file exists: --force has nothing to remove and nothing is left.
    let out = host.rpmem(&["remove", "localhost", "gone.set", "--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Without --force, a missing part is an error and nothing is removed.
    let out = host.rpmem(&["remove", "localhost", "gone.set", "--pool-set"]);
    assert_eq!(out.status.code(), Some(EXIT_FAILED));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("nothing was removed"), "{stderr}");
    assert!(host.path("poolsets/gone.set").exists());
}
