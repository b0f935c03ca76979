//! The `rpmem` command-line tool, run as a program: `poolset` against every
//! upstream PMDK case, `demo`, a create/info/put/get/remove round trip and
//! `bench --local --json` in local mode against the real rpmemd, and the
//! error cases with their exit codes (docs/rpmem-cli.md).

mod common;

use common::{rpmemd, RPMEM};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

// Exit codes (docs/rpmem-cli.md).
const EXIT_FAILED: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_LOCAL: i32 = 3;
const EXIT_CONNECTION: i32 = 4;

/// Runs rpmem with `args` and a clean RPMEM_* environment plus `env`.
fn rpmem(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(RPMEM);
    cmd.args(args);
    for var in [
        "RPMEM_LAUNCH",
        "RPMEM_CMD",
        "RPMEM_SSH",
        "RPMEM_MAX_NLANES",
        "RPMEM_WORK_QUEUE_SIZE",
        "RPMEM_SPIN_US",
        "RPMEMD_SPIN_US",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running rpmem")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("an exit code, not a signal")
}

/// Asserts success and returns stdout.
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "rpmem failed ({}):\n{}{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts exit code `want` and a one-line message on stderr naming
/// `words`; returns stderr.
fn fails(o: &Output, want: i32, words: &str) -> String {
    let err = stderr(o);
    assert_eq!(code(o), want, "stdout: {}\nstderr: {err}", stdout(o));
    assert!(err.contains(words), "{err:?} should mention {words:?}");
    err
}

// ---------------------------------------------------------------------------
// rpmem poolset against PMDK's util_poolset_parse cases

fn upstream_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/pmdk-1.12.1/tests/util_poolset_parse")
}

/// `key=value` out of a space-separated line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    line.split(' ')
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// What PMDK printed, in the shape of our JSON: `{"ok":false,"line","error"}`
/// or the fields our JSON has for an accepted file.
fn expected_json(text: &str) -> Value {
    let mut lines = text.lines();
    let head = lines.next().expect("a first line");
    if head.contains(": ERROR ") {
        let inner = &head[head.find(" [").expect("[") + 2..head.rfind(']').expect("]")];
        let (reason, line) = inner.rsplit_once(':').expect("reason:line");
        return serde_json::json!({
            "ok": false,
            "line": line.parse::<u64>().expect("a line number"),
            "error": reason,
        });
    }
    let options = u32::from_str_radix(field(head, "options").trim_start_matches("0x"), 16)
        .expect("hex options");
    let mut replicas: Vec<Value> = Vec::new();
    for line in lines.map(str::trim_start) {
        if line.starts_with("replica ") {
            let remote = line.contains(" REMOTE ").then(|| {
                serde_json::json!({"node": field(line, "node"), "descriptor": field(line, "desc")})
            });
            replicas.push(serde_json::json!({
                "remote": remote,
                "size": field(line, "repsize").parse::<u64>().expect("repsize"),
                "nparts": field(line, "nparts").parse::<u64>().expect("nparts"),
                "nhdrs": field(line, "nhdrs").parse::<u64>().expect("nhdrs"),
                "parts": [],
            }));
        } else if line.starts_with("part ") {
            let path = line.split_once(" path=").expect("path=").1;
            let part = serde_json::json!({
                "size": field(line, "size").parse::<u64>().expect("size"),
                "path": path,
            });
            replicas
                .last_mut()
                .and_then(|r| r["parts"].as_array_mut())
                .expect("a replica before a part")
                .push(part);
        }
    }
    serde_json::json!({
        "ok": true,
        "options_mask": options,
        "remote": field(head, "remote") == "1",
        "pool_size": field(head, "poolsize").parse::<u64>().expect("poolsize"),
        "replicas": replicas,
    })
}

/// Our JSON reduced to the fields PMDK prints.
fn observed_json(v: &Value) -> Value {
    if v["ok"] == false {
        return serde_json::json!({"ok": false, "line": v["line"], "error": v["error"]});
    }
    let mask = v["options"]
        .as_array()
        .expect("options")
        .iter()
        .map(|o| match o.as_str() {
            Some("SINGLEHDR") => 1,
            Some("NOHDRS") => 2,
            other => panic!("unknown option {other:?}"),
        })
        .fold(0u32, |a, b| a | b);
    let replicas: Vec<Value> = v["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| {
            serde_json::json!({
                "remote": r["remote"],
                "size": r["size"],
                "nparts": r["nparts"],
                "nhdrs": r["nhdrs"],
                "parts": r["parts"].as_array().expect("parts").iter()
                    .map(|p| serde_json::json!({"size": p["size"], "path": p["path"]}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let remote = replicas.iter().any(|r| !r["remote"].is_null());
    serde_json::json!({
        "ok": true,
        "options_mask": mask,
        "remote": remote,
        "pool_size": v["pool_size"],
        "replicas": replicas,
    })
}

/// The documented deviations (docs/poolset.md): our result instead of
/// PMDK's.
fn deviation(name: &str, got: &Value) -> Option<()> {
    let conflict = |line: u64| {
        assert_eq!(got["ok"], false, "{name}");
        assert_eq!(got["line"], line, "{name}");
        assert_eq!(
            got["error"], "options SINGLEHDR and NOHDRS are mutually exclusive",
            "{name}"
        );
    };
    // AUTO parts: recorded, sizes unknown (null) until rpmemd resolves them.
    let auto = |replica: usize, path: &str| {
        assert_eq!(got["ok"], true, "{name}: {got}");
        let part = &got["replicas"][replica]["parts"][0];
        assert_eq!(part["size"], Value::Null, "{name}");
        assert_eq!(part["path"], path, "{name}");
        assert_eq!(got["pool_size"], Value::Null, "{name}");
        assert_eq!(got["replicas"][replica]["size"], Value::Null, "{name}");
    };
    match name {
        "pool55.set" => conflict(3),
        "pool56.set" => conflict(2),
        "pool57.set" => conflict(4),
        "pool59.set" => conflict(6),
        "pool40.set" => auto(0, "/mountpoint0/myfile.part0"),
        "pool42.set" | "pool43.set" => auto(1, "/mountpoint5/mymirror1.part0"),
        "pool41.set" => {
            assert_eq!(got["ok"], false, "{name}");
            assert_eq!(got["line"], 7, "{name}");
            assert_eq!(
                got["error"], "incorrect descriptor (must be a relative path)",
                "{name}"
            );
        }
        _ => return None,
    }
    Some(())
}

#[test]
fn poolset_json_matches_every_upstream_case() {
    let dir = upstream_dir();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().into_string().expect("UTF-8"))
        .filter(|n| n.starts_with("pool") && n.ends_with(".set"))
        .collect();
    names.sort();
    assert!(names.len() >= 63, "{names:?}");
    let mut deviations = Vec::new();
    for name in &names {
        let path = dir.join(name);
        let out = rpmem(&["poolset", "--json", path.to_str().expect("UTF-8")], &[]);
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 1, "{name}: one JSON object: {text}");
        let got: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
        let want_code = if got["ok"] == true { 0 } else { EXIT_FAILED };
        assert_eq!(code(&out), want_code, "{name}: {text}");
        if deviation(name, &got).is_some() {
            deviations.push(name.clone());
            continue;
        }
        let stem = name.trim_end_matches(".set");
        let expected = fs::read_to_string(dir.join("expected").join(format!("{stem}.txt")))
            .expect("the expected file");
        assert_eq!(observed_json(&got), expected_json(&expected), "{name}");
    }
    deviations.sort();
    assert_eq!(
        deviations,
        [
            "pool40.set",
            "pool41.set",
            "pool42.set",
            "pool43.set",
            "pool55.set",
            "pool56.set",
            "pool57.set",
            "pool59.set"
        ],
        "exactly the documented deviations"
    );
}

#[test]
fn poolset_text_output_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.set");
    fs::write(
        &good,
        "PMEMPOOLSET\nOPTION SINGLEHDR\n4M /pools/a.part0\n8M /pools/a.part1\nREPLICA\n16M /pools/b.part0\nREPLICA node1 pool.set\n",
    )
    .expect("write");
    let out = ok(&rpmem(&["poolset", good.to_str().expect("UTF-8")], &[]));
    assert!(out.contains("a valid pool set file"), "{out}");
    assert!(out.contains("options: SINGLEHDR"), "{out}");
    assert!(out.contains("pool size: 12582912 bytes (12 MiB)"), "{out}");
    assert!(
        out.contains("replica 0 (line 1): local, 2 part(s), 1 header(s)"),
        "{out}"
    );
    assert!(out.contains("/pools/b.part0"), "{out}");
    assert!(
        out.contains("remote, node \"node1\", pool set \"pool.set\""),
        "{out}"
    );

    let v: Value = serde_json::from_str(&ok(&rpmem(
        &["poolset", "--json", good.to_str().expect("UTF-8")],
        &[],
    )))
    .expect("JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["options"], serde_json::json!(["SINGLEHDR"]));
    assert_eq!(v["pool_size"], 12 << 20);
    assert_eq!(v["replicas"][0]["parts"][1]["size"], 8 << 20);
    assert_eq!(v["replicas"][0]["parts"][1]["path"], "/pools/a.part1");
    assert_eq!(v["replicas"][2]["remote"]["node"], "node1");
    assert_eq!(v["replicas"][2]["remote"]["descriptor"], "pool.set");

    let bad = dir.path().join("bad.set");
    fs::write(&bad, "PMEMPOOLSET\n4M /pools/a.part0\n4X /pools/a.part1\n").expect("write");
    let out = rpmem(&["poolset", bad.to_str().expect("UTF-8")], &[]);
    let err = fails(&out, EXIT_FAILED, "line 3: incorrect format of size");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("rpmem poolset: "), "{err}");

    let out = rpmem(&["poolset", "--json", bad.to_str().expect("UTF-8")], &[]);
    assert_eq!(code(&out), EXIT_FAILED);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({"ok": false, "line": 3, "error": "incorrect format of size"})
    );

    let missing = dir.path().join("missing.set");
    let out = rpmem(&["poolset", missing.to_str().expect("UTF-8")], &[]);
    fails(&out, EXIT_LOCAL, "cannot read pool set file");
    let out = rpmem(
        &["poolset", "--json", missing.to_str().expect("UTF-8")],
        &[],
    );
    assert_eq!(code(&out), EXIT_LOCAL);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["ok"], false);
    assert_eq!(v["line"], Value::Null);
}

// ---------------------------------------------------------------------------
// Local mode against the real rpmemd

/// A scratch rpmemd configuration with a pool set directory.
struct Target {
    dir: tempfile::TempDir,
}

impl Target {
    fn new() -> Target {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Target { dir };
        fs::create_dir(t.path("sets")).expect("mkdir");
        fs::write(
            t.path("rpmemd.conf"),
            format!(
                "poolset-dir = {}\nlog-file = {}\nlog-level = debug\n",
                t.path("sets").display(),
                t.path("rpmemd.log").display()
            ),
        )
        .expect("config");
        t
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A pool set of one part of `size` bytes.
    fn poolset(&self, name: &str, size: u64, nohdrs: bool) -> PathBuf {
        let part = self.path(&format!("{name}.part0"));
        let opt = if nohdrs { "OPTION NOHDRS\n" } else { "" };
        fs::write(
            self.path("sets").join(name),
            format!("PMEMPOOLSET\n{opt}{size} {}\n", part.display()),
        )
        .expect("pool set");
        part
    }

    fn cmd(&self) -> String {
        format!(
            "{} -c {}",
            rpmemd().display(),
            self.path("rpmemd.conf").display()
        )
    }

    /// rpmem with local launch of this target's rpmemd, through the
    /// environment as a user would set it.
    fn run(&self, args: &[&str]) -> Output {
        let cmd = self.cmd();
        rpmem(
            args,
            &[
                ("RPMEM_LAUNCH", "local"),
                ("RPMEM_CMD", cmd.as_str()),
                ("RPMEM_SPIN_US", "0"),
            ],
        )
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn create_info_put_get_remove_round_trip() {
    let t = Target::new();
    let part = t.poolset("rt.set", 8 << 20, false);
    let out = ok(&t.run(&[
        "create",
        "localhost",
        "rt.set",
        "--size",
        "8M",
        "--signature",
        "CLITEST",
        "--major",
        "7",
        "--compat",
        "0x11",
        "--incompat",
        "0",
        "--ro-compat",
        "3",
        "--poolset-uuid",
        "00112233-4455-6677-8899-aabbccddeeff",
        "--uuid",
        "10112233-4455-6677-8899-aabbccddeeff",
        "--next-uuid",
        "20112233-4455-6677-8899-aabbccddeeff",
        "--prev-uuid",
        "30112233-4455-6677-8899-aabbccddeeff",
        "--user-flags",
        "0102030405060708090a0b0c0d0e0f10",
    ]));
    assert!(
        out.contains("created pool set \"rt.set\" on localhost: 8 MiB"),
        "{out}"
    );
    assert_eq!(
        fs::metadata(&part).expect("the part file").len(),
        8 << 20,
        "the part file has the pool set's size"
    );

    let info: Value = serde_json::from_str(&ok(&t.run(&["info", "localhost", "rt.set", "--json"])))
        .expect("JSON");
    assert_eq!(info["headers"], true);
    assert_eq!(info["persist_method"], "GPSPM");
    assert_eq!(info["lanes"], 1);
    assert_eq!(info["size_opened"], 8192);
    let a = &info["attributes"];
    assert_eq!(a["signature"], "CLITEST");
    assert_eq!(a["major"], 7);
    assert_eq!(a["compat_features"], 0x11);
    assert_eq!(a["incompat_features"], 0);
    assert_eq!(a["ro_compat_features"], 3);
    assert_eq!(a["poolset_uuid"], "00112233-4455-6677-8899-aabbccddeeff");
    assert_eq!(a["uuid"], "10112233-4455-6677-8899-aabbccddeeff");
    assert_eq!(a["next_uuid"], "20112233-4455-6677-8899-aabbccddeeff");
    assert_eq!(a["prev_uuid"], "30112233-4455-6677-8899-aabbccddeeff");
    assert_eq!(a["user_flags"], "0102030405060708090a0b0c0d0e0f10");

    let text = ok(&t.run(&["info", "localhost", "rt.set", "--lanes", "2"]));
    assert!(text.contains("signature           \"CLITEST\""), "{text}");
    assert!(text.contains("GPSPM"), "{text}");

    // A file of an odd length that spans several 1 MiB chunks, at the
    // default offset (after the header) over 3 lanes.
    let data = pattern(3 * (1 << 20) + 12345, 1);
    let input = t.path("input.bin");
    fs::write(&input, &data).expect("input");
    let put = t.run(&[
        "put",
        "localhost",
        "rt.set",
        input.to_str().expect("UTF-8"),
        "--lanes",
        "3",
    ]);
    assert_eq!(stdout(&put), "", "put is quiet when not on a terminal");
    ok(&put);
    // The bytes are in the pool file on the target side right after the
    // 4096-byte header.
    let on_disk = fs::read(&part).expect("part");
    assert_eq!(&on_disk[4096..4096 + data.len()], &data[..]);

    let output = t.path("output.bin");
    let len = data.len().to_string();
    let get = t.run(&[
        "get",
        "localhost",
        "rt.set",
        output.to_str().expect("UTF-8"),
        "--length",
        &len,
    ]);
    assert_eq!(stdout(&get), "");
    ok(&get);
    assert!(
        fs::read(&output).expect("output") == data,
        "get returns what put wrote"
    );

    // An explicit offset, and a part of it read back.
    let small = pattern(5000, 2);
    let input2 = t.path("small.bin");
    fs::write(&input2, &small).expect("input");
    ok(&t.run(&[
        "put",
        "localhost",
        "rt.set",
        input2.to_str().expect("UTF-8"),
        "--offset",
        "6M",
    ]));
    ok(&t.run(&[
        "get",
        "localhost",
        "rt.set",
        output.to_str().expect("UTF-8"),
        "--offset",
        "6291556",
        "--length",
        "1000",
    ]));
    assert_eq!(fs::read(&output).expect("output"), &small[100..1100]);

    // Writing into the header is refused by the library: a usage error.
    let out = t.run(&[
        "put",
        "localhost",
        "rt.set",
        input2.to_str().expect("UTF-8"),
        "--offset",
        "0",
    ]);
    fails(&out, EXIT_USAGE, "4096");

    // A file larger than the pool: rpmemd refuses the open.
    let out = t.run(&[
        "get",
        "localhost",
        "rt.set",
        output.to_str().expect("UTF-8"),
        "--length",
        "9M",
    ]);
    fails(
        &out,
        EXIT_FAILED,
        "cannot open pool set \"rt.set\" on localhost",
    );

    let out = ok(&t.run(&["remove", "localhost", "rt.set"]));
    assert!(out.contains("removed the pool"), "{out}");
    assert!(!part.exists(), "the part file is removed");
    assert!(t.path("sets/rt.set").exists(), "the pool set file stays");
    let out = t.run(&["info", "localhost", "rt.set"]);
    fails(&out, EXIT_FAILED, "RPMEM_ERR_NOEXIST");
    ok(&t.run(&["remove", "localhost", "rt.set", "--force", "--pool-set"]));
    assert!(
        !t.path("sets/rt.set").exists(),
        "--pool-set removes the pool set file"
    );
}

#[test]
fn pool_without_headers_uses_offset_zero() {
    let t = Target::new();
    let part = t.poolset("nh.set", 4 << 20, true);
    let out = ok(&t.run(&[
        "create",
        "localhost",
        "nh.set",
        "--size",
        "4M",
        "--no-headers",
    ]));
    assert!(out.contains("headers             no"), "{out}");
    let info: Value = serde_json::from_str(&ok(&t.run(&["info", "localhost", "nh.set", "--json"])))
        .expect("JSON");
    assert_eq!(info["headers"], false);
    assert_eq!(info["attributes"], Value::Null);
    let data = pattern(10_000, 3);
    let input = t.path("in.bin");
    fs::write(&input, &data).expect("input");
    ok(&t.run(&["put", "localhost", "nh.set", input.to_str().expect("UTF-8")]));
    assert_eq!(&fs::read(&part).expect("part")[..data.len()], &data[..]);
    let output = t.path("out.bin");
    ok(&t.run(&[
        "get",
        "localhost",
        "nh.set",
        output.to_str().expect("UTF-8"),
        "--length",
        "10000",
    ]));
    assert_eq!(fs::read(&output).expect("output"), data);
    // Attributes for a NOHDRS pool set are refused by rpmemd.
    let t2 = t.poolset("nh2.set", 4 << 20, true);
    let out = t.run(&["create", "localhost", "nh2.set", "--size", "4M"]);
    fails(&out, EXIT_FAILED, "cannot create pool set \"nh2.set\"");
    assert!(!t2.exists());
}

#[test]
fn demo_verifies_and_leaves_nothing_behind() {
    rpmemd();
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = rpmem(
        &[
            "demo",
            "--dir",
            scratch.path().to_str().expect("UTF-8"),
            "--mib",
            "3",
            "--lanes",
            "2",
        ],
        &[],
    );
    let text = ok(&out);
    assert!(text.contains("verification passed"), "{text}");
    for step in 1..=7 {
        assert!(text.contains(&format!("[{step}/7]")), "step {step}: {text}");
    }
    assert!(text.contains("median"), "{text}");
    assert!(text.contains("MiB/s"), "{text}");
    assert!(text.contains("found next to this program"), "{text}");
    let left: Vec<_> = fs::read_dir(scratch.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "the demo left {left:?} behind");
}

#[test]
fn demo_with_a_missing_rpmemd_says_how_to_fix_it() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = rpmem(
        &[
            "demo",
            "--dir",
            scratch.path().to_str().expect("UTF-8"),
            "--rpmemd",
            "/nonexistent/rpmemd",
        ],
        &[],
    );
    fails(&out, EXIT_LOCAL, "--rpmemd");
    assert_eq!(fs::read_dir(scratch.path()).expect("read_dir").count(), 0);
}

#[test]
fn bench_local_json_has_the_documented_keys() {
    rpmemd();
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = rpmem(
        &[
            "bench",
            "--local",
            "--json",
            "--dir",
            scratch.path().to_str().expect("UTF-8"),
            "--sizes",
            "64,4K",
            "--lanes",
            "2",
            "--ops",
            "30",
            "--seconds",
            "0.5",
            "--spin-us",
            "0",
        ],
        &[],
    );
    let text = ok(&out);
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let results = v["results"].as_array().expect("results");
    // 4 modes x 2 sizes on 1 lane, then each mode at 4 KiB on 2 lanes.
    assert_eq!(results.len(), 12, "{text}");
    for r in results {
        let mode = r["mode"].as_str().expect("mode");
        assert!(
            ["persist", "flush-drain", "deep", "read"].contains(&mode),
            "{r}"
        );
        assert!(
            [64, 4096].contains(&r["size"].as_u64().expect("size")),
            "{r}"
        );
        assert!([1, 2].contains(&r["lanes"].as_u64().expect("lanes")), "{r}");
        assert!(r["ops"].as_u64().expect("ops") >= 1, "{r}");
        for key in ["p50_us", "p99_us", "mib_s", "mib_s_p50"] {
            assert!(r[key].as_f64().expect(key) > 0.0, "{key} in {r}");
        }
        assert!(r["p99_us"].as_f64() >= r["p50_us"].as_f64(), "{r}");
    }
    let b = &v["baselines"];
    for key in [
        "tcp_rtt_p50_us",
        "tcp_rtt_blocking_p50_us",
        "tcp_stream_mib_s",
        "memcpy_mib_s",
        "tcp_1m_ack_p50_us",
    ] {
        assert!(b[key].as_f64().expect(key) > 0.0, "{key}: {b}");
    }
    assert!(
        v["ratios"]["persist_64_p50_over_tcp_rtt_p50"]
            .as_f64()
            .expect("ratio")
            > 0.0
    );
    // No 1 MiB case was run: the throughput ratios are null.
    assert_eq!(v["ratios"]["persist_1m_mib_s_over_tcp_stream"], Value::Null);
    assert_eq!(v["setup"]["local"], true);
    assert_eq!(fs::read_dir(scratch.path()).expect("read_dir").count(), 0);
}

#[test]
fn bench_against_an_existing_pool() {
    let t = Target::new();
    t.poolset("b.set", 4 << 20, false);
    ok(&t.run(&["create", "localhost", "b.set", "--size", "4M"]));
    let out = ok(&t.run(&[
        "bench",
        "localhost",
        "b.set",
        "--sizes",
        "4K",
        "--mode",
        "persist,read",
        "--ops",
        "20",
        "--lanes",
        "1",
    ]));
    assert!(out.contains("persist"), "{out}");
    assert!(out.contains("busy-polling"), "{out}");
    // The pool is too small for 2 lanes of 4 MiB: rpmemd refuses, and the
    // message says what the benchmark needed.
    let out = t.run(&[
        "bench",
        "localhost",
        "b.set",
        "--sizes",
        "4M",
        "--lanes",
        "2",
    ]);
    fails(&out, EXIT_FAILED, "the benchmark needs");
}

// ---------------------------------------------------------------------------
// Errors and exit codes

#[test]
fn bad_target_is_a_usage_error() {
    for target in ["a@b@c", "host:99999", "-oProxyCommand=x", "", "user@"] {
        // After `--` even a target that looks like an option reaches the check.
        let out = rpmem(&["info", "--", target, "p.set"], &[]);
        fails(&out, EXIT_USAGE, "invalid target address");
    }
    // Local mode refuses a non-loopback host.
    let out = rpmem(&["info", "example.com", "p.set", "--launch", "local"], &[]);
    fails(&out, EXIT_USAGE, "loopback");
}

#[test]
fn bad_sizes_and_values_are_usage_errors() {
    let cases: &[&[&str]] = &[
        &["create", "localhost", "p.set", "--size", "4X"],
        &["create", "localhost", "p.set", "--size", "-1"],
        &["create", "localhost", "p.set", "--size", "5000"],
        &["create", "localhost", "p.set", "--size", "0"],
        &[
            "create",
            "localhost",
            "p.set",
            "--size",
            "8M",
            "--uuid",
            "nope",
        ],
        &[
            "create",
            "localhost",
            "p.set",
            "--size",
            "8M",
            "--signature",
            "TOOLONGSIG",
        ],
        &[
            "create",
            "localhost",
            "p.set",
            "--size",
            "8M",
            "--major",
            "x",
        ],
        &[
            "create",
            "localhost",
            "p.set",
            "--size",
            "8M",
            "--no-headers",
            "--major",
            "1",
        ],
        &["get", "localhost", "p.set", "out"],
        &["bench", "localhost"],
        &["bench", "--local", "--mode", "write"],
        &["info", "localhost", "p.set", "--timeout", "0"],
        &["nosuchcommand"],
    ];
    for args in cases {
        let out = rpmem(args, &[]);
        assert_eq!(code(&out), EXIT_USAGE, "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{args:?}");
    }
    let out = rpmem(
        &["info", "localhost", "p.set"],
        &[("RPMEM_MAX_NLANES", "zero")],
    );
    fails(&out, EXIT_USAGE, "RPMEM_MAX_NLANES");
}

#[test]
fn missing_pool_and_missing_programs() {
    let t = Target::new();
    let out = t.run(&["info", "localhost", "nope.set"]);
    let err = fails(&out, EXIT_FAILED, "RPMEM_ERR_NOEXIST");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("rpmem info: cannot open pool set \"nope.set\" on localhost"),
        "{err}"
    );

    // rpmemd cannot be started: a local problem.
    let out = rpmem(
        &[
            "info",
            "localhost",
            "p.set",
            "--launch",
            "local",
            "--cmd",
            "/nonexistent/rpmemd",
        ],
        &[],
    );
    fails(&out, EXIT_LOCAL, "cannot start");

    // The "rpmemd" exits at once without a word: the connection failed.
    let out = rpmem(
        &[
            "info",
            "localhost",
            "p.set",
            "--launch",
            "local",
            "--cmd",
            "true",
        ],
        &[],
    );
    fails(&out, EXIT_CONNECTION, "went away");

    // put of a file that does not exist: a local problem, before anything starts.
    let out = t.run(&["put", "localhost", "p.set", "/nonexistent/file"]);
    fails(&out, EXIT_LOCAL, "cannot open /nonexistent/file");
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "demo", "create", "info", "remove", "list", "set-attr", "put", "get", "bench", "poolset",
    ] {
        let out = rpmem(&[sub, "--help"], &[]);
        let text = ok(&out);
        assert!(text.contains("Usage: rpmem"), "{sub}: {text}");
        assert!(text.contains(sub), "{sub}: {text}");
    }
    let text = ok(&rpmem(&["--help"], &[]));
    assert!(text.contains("demo"), "{text}");
    let text = ok(&rpmem(&["--version"], &[]));
    assert!(text.starts_with("rpmem "), "{text}");
}

// ---------------------------------------------------------------------------
// get and put: what a failure leaves, standard input and output (issue 18)

/// Runs rpmem like [`Target::run`] with `input` on its standard input.
fn run_with_stdin(t: &Target, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut cmd = Command::new(RPMEM);
    cmd.args(args)
        .env_remove("RPMEMD_SPIN_US")
        .env("RPMEM_LAUNCH", "local")
        .env("RPMEM_CMD", t.cmd())
        .env("RPMEM_SPIN_US", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("running rpmem");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("rpmem's output");
    writer.join().expect("the stdin writer");
    out
}

fn is_fifo(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false)
}

#[test]
fn a_failed_get_leaves_what_was_there() {
    let t = Target::new();
    // A regular file.
    let keep = t.path("keep.bin");
    fs::write(&keep, "precious\n").expect("write");
    let out = t.run(&[
        "get",
        "localhost",
        "nope.set",
        keep.to_str().expect("UTF-8"),
        "--length",
        "10",
    ]);
    fails(&out, EXIT_FAILED, "RPMEM_ERR_NOEXIST");
    assert_eq!(fs::read_to_string(&keep).expect("keep.bin"), "precious\n");

    // A symbolic link and the file it points to.
    let link = t.path("link.bin");
    std::os::unix::fs::symlink(&keep, &link).expect("symlink");
    let out = t.run(&[
        "get",
        "localhost",
        "nope.set",
        link.to_str().expect("UTF-8"),
        "--length",
        "10",
    ]);
    fails(&out, EXIT_FAILED, "RPMEM_ERR_NOEXIST");
    assert!(fs::symlink_metadata(&link)
        .expect("the link")
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_to_string(&keep).expect("keep.bin"), "precious\n");

    // A FIFO.
    let fifo = t.path("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let out = t.run(&[
        "get",
        "localhost",
        "nope.set",
        fifo.to_str().expect("UTF-8"),
        "--length",
        "10",
    ]);
    fails(&out, EXIT_FAILED, "RPMEM_ERR_NOEXIST");
    assert!(is_fifo(&fifo), "the FIFO is still there");

    // Nothing else was left in the directory (no temporary file).
    let mut names: Vec<String> = fs::read_dir(t.dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "fifo",
            "keep.bin",
            "link.bin",
            "rpmemd.conf",
            "rpmemd.log",
            "sets"
        ],
        "nothing else left behind"
    );
}

#[test]
fn get_replaces_files_and_follows_links() {
    let t = Target::new();
    t.poolset("g.set", 4 << 20, false);
    ok(&t.run(&["create", "localhost", "g.set", "--size", "4M"]));
    let data = pattern(3000, 5);
    let input = t.path("in.bin");
    fs::write(&input, &data).expect("input");
    ok(&t.run(&["put", "localhost", "g.set", input.to_str().expect("UTF-8")]));

    // An existing longer file is replaced by exactly the bytes read.
    let out = t.path("out.bin");
    fs::write(&out, vec![b'x'; 10_000]).expect("write");
    ok(&t.run(&[
        "get",
        "localhost",
        "g.set",
        out.to_str().expect("UTF-8"),
        "--length",
        "3000",
    ]));
    assert_eq!(fs::read(&out).expect("out"), data);

    // Through a symbolic link: the file it points to gets the bytes, the
    // link stays.
    let target = t.path("target.bin");
    fs::write(&target, "old").expect("write");
    let link = t.path("link.bin");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    ok(&t.run(&[
        "get",
        "localhost",
        "g.set",
        link.to_str().expect("UTF-8"),
        "--length",
        "3000",
    ]));
    assert!(fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&target).expect("target"), data);

    // A dangling link is refused and left alone.
    let dangling = t.path("dangling");
    std::os::unix::fs::symlink(t.path("nowhere"), &dangling).expect("symlink");
    let o = t.run(&[
        "get",
        "localhost",
        "g.set",
        dangling.to_str().expect("UTF-8"),
        "--length",
        "3000",
    ]);
    fails(&o, EXIT_LOCAL, "symbolic link");
    assert!(fs::symlink_metadata(&dangling).is_ok());
    assert!(!t.path("nowhere").exists());

    // A new file gets the mode of a newly created file (0666 less umask,
    // 0644 or stricter under the usual umasks), not the temporary 0600.
    let fresh = t.path("fresh.bin");
    ok(&t.run(&[
        "get",
        "localhost",
        "g.set",
        fresh.to_str().expect("UTF-8"),
        "--length",
        "10",
    ]));
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&fresh).expect("fresh").permissions().mode() & 0o777;
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let umask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|v| u32::from_str_radix(v.trim(), 8).expect("octal umask"))
        .expect("a Umask line");
    assert_eq!(mode, 0o666 & !umask, "mode {mode:o}");
}

#[test]
fn get_to_a_fifo_and_to_standard_output() {
    let t = Target::new();
    t.poolset("s.set", 4 << 20, false);
    ok(&t.run(&["create", "localhost", "s.set", "--size", "4M"]));
    let data = pattern((1 << 20) + 777, 9);
    let input = t.path("in.bin");
    fs::write(&input, &data).expect("input");
    ok(&t.run(&["put", "localhost", "s.set", input.to_str().expect("UTF-8")]));

    // `-`: the exact bytes on standard output, over several lanes.
    let len = data.len().to_string();
    let out = t.run(&[
        "get",
        "localhost",
        "s.set",
        "-",
        "--length",
        &len,
        "--lanes",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "get - writes the bytes to stdout");

    // A FIFO with a reader: the bytes arrive, the FIFO stays.
    let fifo = t.path("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).expect("reading the FIFO"))
    };
    let out = t.run(&[
        "get",
        "localhost",
        "s.set",
        fifo.to_str().expect("UTF-8"),
        "--length",
        &len,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(reader.join().expect("reader") == data);
    assert!(is_fifo(&fifo));
}

#[test]
fn put_from_standard_input_round_trips() {
    let t = Target::new();
    t.poolset("i.set", 4 << 20, false);
    ok(&t.run(&["create", "localhost", "i.set", "--size", "4M"]));
    let data = pattern(2 * (1 << 20) + 4321, 11);
    let out = run_with_stdin(&t, &["put", "localhost", "i.set", "-"], &data);
    assert!(out.status.success(), "{}", stderr(&out));
    let back = t.path("back.bin");
    let len = data.len().to_string();
    ok(&t.run(&[
        "get",
        "localhost",
        "i.set",
        back.to_str().expect("UTF-8"),
        "--length",
        &len,
    ]));
    assert!(fs::read(&back).expect("back") == data);
}

#[test]
fn empty_and_header_transfers() {
    let t = Target::new();
    t.poolset("e.set", 4 << 20, false);
    ok(&t.run(&[
        "create",
        "localhost",
        "e.set",
        "--size",
        "4M",
        "--signature",
        "EMPTYT",
    ]));
    // An empty put is a no-op that succeeds.
    let empty = t.path("empty");
    fs::write(&empty, "").expect("write");
    ok(&t.run(&["put", "localhost", "e.set", empty.to_str().expect("UTF-8")]));
    // ... but still checks that the pool exists.
    let out = t.run(&[
        "put",
        "localhost",
        "nope.set",
        empty.to_str().expect("UTF-8"),
    ]);
    fails(&out, EXIT_FAILED, "RPMEM_ERR_NOEXIST");
    // An empty put from standard input too.
    let out = run_with_stdin(&t, &["put", "localhost", "e.set", "-"], b"");
    assert!(out.status.success(), "{}", stderr(&out));

    // A zero-length get writes an empty file.
    let out0 = t.path("zero.bin");
    fs::write(&out0, "old").expect("write");
    ok(&t.run(&[
        "get",
        "localhost",
        "e.set",
        out0.to_str().expect("UTF-8"),
        "--length",
        "0",
    ]));
    assert_eq!(fs::read(&out0).expect("zero.bin").len(), 0);

    // The pool header can be read: it starts with the signature.
    let hdr = t.path("hdr.bin");
    ok(&t.run(&[
        "get",
        "localhost",
        "e.set",
        hdr.to_str().expect("UTF-8"),
        "--offset",
        "0",
        "--length",
        "4096",
    ]));
    let bytes = fs::read(&hdr).expect("hdr.bin");
    assert_eq!(bytes.len(), 4096);
    assert_eq!(&bytes[..8], b"EMPTYT\0\0");
}

// ---------------------------------------------------------------------------
// Standard output that cannot be written (issue 18)

/// Runs rpmem like [`rpmem`] with standard output on /dev/full.
fn rpmem_to_full(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(RPMEM);
    cmd.args(args);
    for var in [
        "RPMEM_LAUNCH",
        "RPMEM_CMD",
        "RPMEM_SPIN_US",
        "RPMEMD_SPIN_US",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    cmd.stdout(full);
    cmd.output().expect("running rpmem")
}

#[test]
fn a_full_stdout_fails_every_subcommand() {
    let t = Target::new();
    t.poolset("f.set", 4 << 20, false);
    let set = t.path("sets/f.set");
    let set = set.to_str().expect("UTF-8");
    let cmd = t.cmd();
    let env = [
        ("RPMEM_LAUNCH", "local"),
        ("RPMEM_CMD", cmd.as_str()),
        ("RPMEM_SPIN_US", "0"),
    ];
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path().to_str().expect("UTF-8");
    let data = t.path("d.bin");
    fs::write(&data, pattern(5000, 1)).expect("write");
    let cases: &[&[&str]] = &[
        &["create", "localhost", "f.set", "--size", "4M", "--json"],
        &["info", "localhost", "f.set", "--json"],
        &["info", "localhost", "f.set"],
        &["get", "localhost", "f.set", "-", "--length", "5000"],
        &["get", "localhost", "f.set", "/dev/stdout", "--length", "10"],
        &["poolset", set],
        &["poolset", "--json", set],
        &["list", "localhost"],
        &["list", "localhost", "--json"],
        &["demo", "--dir", dir, "--mib", "1", "--lanes", "1"],
        &[
            "bench", "--local", "--dir", dir, "--sizes", "64", "--mode", "persist", "--ops", "10",
            "--lanes", "1",
        ],
        &[
            "bench", "--local", "--json", "--dir", dir, "--sizes", "64", "--mode", "persist",
            "--ops", "10", "--lanes", "1",
        ],
        &["--help"],
        &["--version"],
        &["info", "--help"],
    ];
    for args in cases {
        // demo and bench --local start their own rpmemd.
        let own = ["demo", "bench"].contains(&args[0]);
        let out = rpmem_to_full(args, if own { &[] } else { &env });
        let err = stderr(&out);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{args:?} exits 0 on a full stdout"
        );
        assert_eq!(code(&out), EXIT_LOCAL, "{args:?}: {err}");
        assert!(err.contains("standard output"), "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------------------
// One rule for finding rpmemd (issue 18)

#[test]
fn local_mode_finds_rpmemd_next_to_rpmem() {
    rpmemd();
    let t = Target::new();
    t.poolset("r.set", 4 << 20, false);
    let conf = t.path("rpmemd.conf");
    let cmd = format!("rpmemd -c {}", conf.display());
    // No rpmemd on PATH: the bare word resolves to the one next to rpmem.
    let env = [
        ("RPMEM_LAUNCH", "local"),
        ("RPMEM_CMD", cmd.as_str()),
        ("PATH", "/usr/bin:/bin"),
    ];
    ok(&rpmem(
        &["create", "localhost", "r.set", "--size", "4M"],
        &env,
    ));
    ok(&rpmem(&["info", "localhost", "r.set"], &env));
    // The same through the options.
    ok(&rpmem(
        &[
            "info",
            "localhost",
            "r.set",
            "--launch",
            "local",
            "--cmd",
            &cmd,
        ],
        &[("PATH", "/usr/bin:/bin")],
    ));
    // A path that is not the bare word is used as given.
    let out = rpmem(
        &[
            "info",
            "localhost",
            "r.set",
            "--launch",
            "local",
            "--cmd",
            "/nonexistent/rpmemd",
        ],
        &[],
    );
    fails(&out, EXIT_LOCAL, "/nonexistent/rpmemd");
}

#[test]
fn contradictory_options_are_usage_errors() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (&["bench", "--local", "--cmd", "rpmemd"], &[], "--cmd"),
        (
            &["bench", "--local"],
            &[("RPMEM_CMD", "rpmemd -c x")],
            "RPMEM_CMD",
        ),
        (
            &["bench", "--local", "--launch", "ssh"],
            &[],
            "--launch ssh",
        ),
        (
            &["bench", "--local"],
            &[("RPMEM_LAUNCH", "ssh")],
            "RPMEM_LAUNCH=ssh",
        ),
        (&["bench", "--local", "--ssh", "myssh"], &[], "--ssh"),
        (
            &["bench", "localhost", "p.set", "--rpmemd", "/x"],
            &[],
            "--rpmemd",
        ),
        (
            &["bench", "localhost", "p.set", "--dir", "/tmp"],
            &[],
            "--dir",
        ),
        (&["demo"], &[("RPMEM_CMD", "rpmemd -c x")], "RPMEM_CMD"),
        (&["demo"], &[("RPMEM_LAUNCH", "ssh")], "RPMEM_LAUNCH=ssh"),
        (
            &[
                "info",
                "localhost",
                "p.set",
                "--launch",
                "local",
                "--ssh-arg=-v",
            ],
            &[],
            "--ssh-arg",
        ),
    ];
    for (args, env, words) in cases {
        let out = rpmem(args, env);
        let err = stderr(&out);
        assert_eq!(code(&out), EXIT_USAGE, "{args:?} {env:?}: {err}");
        assert!(
            err.contains(words),
            "{args:?} {env:?}: {err:?} should name {words:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The exit-status table of docs/rpmem-cli.md, row by row (issue 18)

#[test]
fn every_documented_exit_status() {
    let t = Target::new();
    t.poolset("x.set", 4 << 20, false);
    t.poolset("nh.set", 4 << 20, true);
    let dir = t.dir.path().to_str().expect("UTF-8").to_owned();
    let small = t.path("small.bin");
    fs::write(&small, pattern(100, 4)).expect("write");
    let small = small.to_str().expect("UTF-8");
    let out = t.path("out.bin");
    let out = out.to_str().expect("UTF-8");
    let bad_set = t.path("bad.set");
    fs::write(&bad_set, "PMEMPOOLSET\n4X /p\n").expect("write");
    let bad_set = bad_set.to_str().expect("UTF-8");
    let in_missing_dir = format!("{dir}/no/such/dir/out.bin");

    // Row 0: success, --help, --version; offsets need no alignment.
    ok(&t.run(&["create", "localhost", "x.set", "--size", "4M"]));
    ok(&t.run(&["info", "localhost", "x.set"]));
    ok(&t.run(&["put", "localhost", "x.set", small, "--offset", "4097"]));
    ok(&t.run(&[
        "get",
        "localhost",
        "x.set",
        out,
        "--offset",
        "4097",
        "--length",
        "100",
    ]));
    assert_eq!(fs::read(out).expect("out"), pattern(100, 4));
    ok(&t.run(&["--help"]));
    ok(&t.run(&["--version"]));

    // Row 1: rpmemd refused or failed; remove failed; invalid pool set file.
    let rows: &[(&[&str], &str)] = &[
        (&["info", "localhost", "nope.set"], "RPMEM_ERR_NOEXIST"),
        (
            &["create", "localhost", "x.set", "--size", "4M"],
            "RPMEM_ERR_EXISTS",
        ),
        (&["create", "localhost", "nh.set", "--size", "4M"], "nh.set"),
        (
            &["info", "localhost", "x.set", "--size", "8M"],
            "RPMEM_ERR_BADSIZE",
        ),
        // An offset past the pool: only rpmemd knows the pool's size.
        (
            &[
                "get",
                "localhost",
                "x.set",
                out,
                "--offset",
                "5M",
                "--length",
                "1",
            ],
            "the pool has 4194304 bytes",
        ),
        (
            &["put", "localhost", "x.set", small, "--offset", "5M"],
            "the pool has 4194304 bytes",
        ),
        (&["remove", "localhost", "nope.set"], "nope.set"),
        (&["poolset", bad_set], "line 2"),
    ];
    for (args, words) in rows {
        fails(&t.run(args), EXIT_FAILED, words);
    }

    // Row 2: usage errors.
    let rows: &[(&[&str], &str)] = &[
        (
            &["info", "localhost", "x.set", "--no-such-option"],
            "--no-such-option",
        ),
        (&["get", "localhost", "x.set", out], "--length"),
        (&["create", "localhost", "y.set", "--size", "5000"], "5000"),
        (&["info", "localhost", "x.set", "--lanes", "0"], "lanes"),
        (
            &[
                "get",
                "localhost",
                "x.set",
                out,
                "--offset",
                "18446744073709551615",
                "--length",
                "1",
            ],
            "offset 18446744073709551615 plus length 1",
        ),
        (&["info", "a@b@c", "x.set"], "invalid target address"),
        (&["info", "example.com", "x.set"], "loopback"),
        (
            &["bench", "localhost", "x.set", "--rpmemd", "/x"],
            "--rpmemd",
        ),
        // Inside the header of a pool with headers: refused once the pool
        // is open (whether it has headers is known only then).
        (
            &["put", "localhost", "x.set", small, "--offset", "100"],
            "pool header",
        ),
    ];
    for (args, words) in rows {
        let err = fails(&t.run(args), EXIT_USAGE, words);
        assert!(!err.contains("Some("), "no debug text: {err}");
    }
    fails(
        &rpmem(
            &["info", "localhost", "x.set"],
            &[("RPMEM_MAX_NLANES", "x")],
        ),
        EXIT_USAGE,
        "RPMEM_MAX_NLANES",
    );
    fails(
        &rpmem(&["info", "localhost", "x.set"], &[("RPMEM_LAUNCH", "nope")]),
        EXIT_USAGE,
        "RPMEM_LAUNCH",
    );

    // Row 3: local problems.
    let rows: &[(&[&str], &str)] = &[
        (
            &["put", "localhost", "x.set", "/nonexistent/file"],
            "/nonexistent/file",
        ),
        (
            &[
                "get",
                "localhost",
                "x.set",
                &in_missing_dir,
                "--length",
                "1",
            ],
            "no/such/dir",
        ),
        (&["poolset", "/nonexistent.set"], "/nonexistent.set"),
    ];
    for (args, words) in rows {
        fails(&t.run(args), EXIT_LOCAL, words);
    }
    fails(
        &rpmem(
            &[
                "info",
                "localhost",
                "x.set",
                "--launch",
                "local",
                "--cmd",
                "/nonexistent/rpmemd",
            ],
            &[],
        ),
        EXIT_LOCAL,
        "cannot start",
    );
    fails(
        &rpmem(
            &["demo", "--rpmemd", "/nonexistent/rpmemd", "--dir", &dir],
            &[],
        ),
        EXIT_LOCAL,
        "--rpmemd",
    );

    // Row 4: the connection failed (rpmemd went away; a deadline passed).
    fails(
        &rpmem(
            &[
                "info",
                "localhost",
                "x.set",
                "--launch",
                "local",
                "--cmd",
                "true",
            ],
            &[],
        ),
        EXIT_CONNECTION,
        "went away",
    );
    fails(
        &rpmem(
            &[
                "info",
                "localhost",
                "x.set",
                "--launch",
                "local",
                "--cmd",
                "sleep 5",
                "--timeout",
                "0.2",
            ],
            &[],
        ),
        EXIT_CONNECTION,
        "timed out",
    );
}

// ---------------------------------------------------------------------------
// create prints what the pool holds (issue 18)

#[test]
fn create_prints_the_stored_attributes() {
    let t = Target::new();
    t.poolset("c.set", 4 << 20, false);
    // Zero user flags: rpmemd stores its architecture flags instead.
    let created: Value = serde_json::from_str(&ok(&t.run(&[
        "create",
        "localhost",
        "c.set",
        "--size",
        "4M",
        "--json",
    ])))
    .expect("JSON");
    let info: Value =
        serde_json::from_str(&ok(&t.run(&["info", "localhost", "c.set", "--json"]))).expect("JSON");
    assert_ne!(
        info["attributes"]["user_flags"], "00000000000000000000000000000000",
        "rpmemd stored its architecture flags"
    );
    assert_eq!(created["attributes"], info["attributes"]);
    assert_eq!(created["size"], 4 << 20);

    // The text form too.
    t.poolset("c2.set", 4 << 20, false);
    let text = ok(&t.run(&["create", "localhost", "c2.set", "--size", "4M"]));
    let info: Value = serde_json::from_str(&ok(&t.run(&["info", "localhost", "c2.set", "--json"])))
        .expect("JSON");
    let flags = info["attributes"]["user_flags"].as_str().expect("flags");
    assert!(
        text.contains(&format!("user flags          {flags}")),
        "{text} should show {flags}"
    );
}

// ---------------------------------------------------------------------------
// Messages in the user's words (issue 18)

#[test]
fn local_mode_errors_name_what_the_user_used() {
    let out = rpmem(&["info", "example.com", "p.set", "--launch", "local"], &[]);
    let err = fails(&out, EXIT_USAGE, "--launch local");
    assert!(!err.contains("RPMEM_LAUNCH"), "{err}");
    let out = rpmem(
        &["info", "example.com", "p.set"],
        &[("RPMEM_LAUNCH", "local")],
    );
    fails(&out, EXIT_USAGE, "RPMEM_LAUNCH=local");
}

#[test]
fn bench_text_explains_its_ratios_and_its_storage() {
    rpmemd();
    // A directory on the disk the build is on (not tmpfs here, usually).
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = scratch.path().to_str().expect("UTF-8");
    let fs_type = Command::new("stat")
        .args(["-f", "-c", "%T", dir])
        .output()
        .expect("stat -f");
    let fs_type = String::from_utf8_lossy(&fs_type.stdout).trim().to_owned();
    let text = ok(&rpmem(
        &[
            "bench",
            "--local",
            "--dir",
            dir,
            "--sizes",
            "64,1M",
            "--mode",
            "persist",
            "--ops",
            "5",
            "--seconds",
            "0.2",
            "--lanes",
            "1",
            "--spin-us",
            "0",
        ],
        &[],
    ));
    assert!(!text.contains("issue"), "{text}");
    assert!(
        text.contains("how much longer a durable 64-byte write takes"),
        "{text}"
    );
    assert!(
        text.contains("share of a bare TCP stream's bandwidth"),
        "{text}"
    );
    let on_memory = ["tmpfs", "ramfs"].contains(&fs_type.as_str());
    assert_eq!(
        text.contains("neither tmpfs nor persistent memory"),
        !on_memory,
        "{fs_type}: {text}"
    );
    // The default scratch directory is /dev/shm (tmpfs): no note.
    if Path::new("/dev/shm").is_dir() {
        let text = ok(&rpmem(
            &[
                "bench",
                "--local",
                "--sizes",
                "64",
                "--mode",
                "persist",
                "--ops",
                "5",
                "--seconds",
                "0.2",
                "--lanes",
                "1",
                "--spin-us",
                "0",
            ],
            &[],
        ));
        assert!(!text.contains("NOTE"), "{text}");
    }
}

// ---------------------------------------------------------------------------
// set-attr and --version on subcommands

#[test]
fn set_attr_changes_only_what_is_given() {
    let t = Target::new();
    t.poolset("a.set", 4 << 20, false);
    ok(&t.run(&[
        "create",
        "localhost",
        "a.set",
        "--size",
        "4M",
        "--signature",
        "BEFORE",
        "--uuid",
        "10112233-4455-6677-8899-aabbccddeeff",
    ]));
    let info = |t: &Target| -> Value {
        serde_json::from_str(&ok(&t.run(&["info", "localhost", "a.set", "--json"]))).expect("JSON")
    };
    let before = info(&t);
    let out: Value = serde_json::from_str(&ok(&t.run(&[
        "set-attr",
        "localhost",
        "a.set",
        "--signature",
        "AFTER",
        "--major",
        "9",
        "--json",
    ])))
    .expect("JSON");
    let after = info(&t);
    assert_eq!(out["attributes"], after["attributes"]);
    assert_eq!(out["before"], before["attributes"]);
    let mut want = before["attributes"].clone();
    want["signature"] = "AFTER".into();
    want["major"] = 9.into();
    assert_eq!(after["attributes"], want);

    let text = ok(&t.run(&[
        "set-attr",
        "localhost",
        "a.set",
        "--user-flags",
        "0102030405060708090a0b0c0d0e0f10",
    ]));
    assert!(
        text.contains("user flags          0102030405060708090a0b0c0d0e0f10"),
        "{text}"
    );
    // Nothing to change: a usage error; a pool without headers: refused.
    fails(
        &t.run(&["set-attr", "localhost", "a.set"]),
        EXIT_USAGE,
        "at least one attribute",
    );
    t.poolset("n.set", 4 << 20, true);
    ok(&t.run(&[
        "create",
        "localhost",
        "n.set",
        "--size",
        "4M",
        "--no-headers",
    ]));
    fails(
        &t.run(&["set-attr", "localhost", "n.set", "--major", "2"]),
        EXIT_FAILED,
        "no header",
    );
}

#[test]
fn subcommands_print_the_version() {
    for sub in [
        "demo", "create", "info", "remove", "list", "set-attr", "put", "get", "bench", "poolset",
    ] {
        let text = ok(&rpmem(&[sub, "--version"], &[]));
        assert!(text.starts_with(&format!("rpmem-{sub} ")), "{sub}: {text}");
    }
}

// ---------------------------------------------------------------------------
// --json on put, get and demo; --quiet and --verbose

#[test]
fn put_get_and_demo_print_json() {
    let t = Target::new();
    t.poolset("j.set", 4 << 20, false);
    ok(&t.run(&["create", "localhost", "j.set", "--size", "4M", "--quiet"]));
    let data = pattern(5000, 6);
    let input = t.path("in.bin");
    fs::write(&input, &data).expect("write");
    let input = input.to_str().expect("UTF-8");
    let text = ok(&t.run(&["put", "localhost", "j.set", input, "--json"]));
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["length"], 5000);
    assert_eq!(v["offset"], 4096);
    assert_eq!(v["file"], input);
    assert_eq!(v["pool_set"], "j.set");
    assert!(v["seconds"].as_f64().expect("seconds") >= 0.0);
    let out = t.path("out.bin");
    let out = out.to_str().expect("UTF-8");
    let v: Value = serde_json::from_str(&ok(&t.run(&[
        "get",
        "localhost",
        "j.set",
        out,
        "--length",
        "5000",
        "--json",
    ])))
    .expect("JSON");
    assert_eq!(v["length"], 5000);
    assert_eq!(v["file"], out);
    assert_eq!(fs::read(out).expect("out"), data);
    // Not when the data goes to standard output.
    fails(
        &t.run(&["get", "localhost", "j.set", "-", "--length", "1", "--json"]),
        EXIT_USAGE,
        "--json",
    );

    let scratch = tempfile::tempdir().expect("tempdir");
    let text = ok(&rpmem(
        &[
            "demo",
            "--json",
            "--dir",
            scratch.path().to_str().expect("UTF-8"),
            "--mib",
            "1",
            "--lanes",
            "2",
        ],
        &[],
    ));
    assert_eq!(text.lines().count(), 1, "only the JSON object: {text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["verification"], "passed");
    for key in [
        "persist_64_p50_us",
        "persist_1m_mib_s_1_lane",
        "persist_1m_mib_s_all_lanes",
        "read_mib_s_all_lanes",
    ] {
        assert!(v[key].as_f64().expect(key) > 0.0, "{key}: {v}");
    }
    assert_eq!(fs::read_dir(scratch.path()).expect("read_dir").count(), 0);
}

#[test]
fn quiet_and_verbose() {
    let t = Target::new();
    t.poolset("q.set", 4 << 20, false);
    // --quiet: nothing on stdout or stderr, the status tells.
    let out = t.run(&["create", "localhost", "q.set", "--size", "4M", "--quiet"]);
    ok(&out);
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "");
    let out = t.run(&["-q", "info", "localhost", "q.set"]);
    ok(&out);
    assert_eq!(stdout(&out), "");
    // ... but errors and --json objects still print.
    fails(
        &t.run(&["info", "localhost", "nope.set", "-q"]),
        EXIT_FAILED,
        "RPMEM_ERR_NOEXIST",
    );
    let text = ok(&t.run(&["info", "localhost", "q.set", "-q", "--json"]));
    assert!(text.starts_with('{'), "{text}");
    // --verbose: how rpmemd is started, on stderr.
    let out = t.run(&["info", "localhost", "q.set", "--verbose"]);
    ok(&out);
    assert!(
        stderr(&out).contains("rpmemd is started on this host as:"),
        "{}",
        stderr(&out)
    );
    fails(
        &t.run(&["info", "localhost", "q.set", "-q", "-v"]),
        EXIT_USAGE,
        "--quiet",
    );
}

// ---------------------------------------------------------------------------
// rpmem list: the pool set files a target offers (rpmemd --list); remove --json (issue 18)

#[test]
fn list_shows_the_pool_sets_a_target_offers() {
    use std::os::unix::fs::symlink;
    let t = Target::new();
    let sets = t.path("sets");
    t.poolset("top.set", 4 << 20, false);
    fs::create_dir_all(sets.join("team/db")).expect("mkdir");
    let part = t.path("nested.part0");
    fs::write(
        sets.join("team/db/nested.set"),
        format!("PMEMPOOLSET\nOPTION NOHDRS\n8M {}\n", part.display()),
    )
    .expect("nested set");
    fs::write(sets.join("team/broken.set"), "PMEMPOOLSET\n4X /p\n").expect("bad set");
    fs::write(sets.join("README"), "not a pool set\n").expect("readme");
    fs::write(sets.join("new\nline.set"), "PMEMPOOLSET\n4M /p\n").expect("newline set");
    fs::write(t.path("outside.set"), "PMEMPOOLSET\n4M /p\n").expect("outside");
    symlink("../outside.set", sets.join("escape.set")).expect("symlink");

    // Text for people: every name a client can pass, with its size or error.
    let text = ok(&t.run(&["list", "localhost"]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("pool set files in rpmemd's poolset-dir")
            && lines[0].contains(sets.to_str().expect("UTF-8"))
            && lines[0].ends_with("on localhost:"),
        "{text}"
    );
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"))
            .to_string()
    };
    assert!(
        row("top.set").contains("4 MiB (4194304 bytes), 1 replica"),
        "{text}"
    );
    assert!(row("team/db/nested.set").contains("8 MiB (8388608 bytes), 1 replica, OPTION NOHDRS"));
    assert!(row("team/broken.set").contains("INVALID: line 2: incorrect format of size"));
    assert!(row("new\\nline.set").contains("4 MiB"), "{text}");
    assert!(
        !text.contains("README") && !text.contains("escape.set"),
        "{text}"
    );
    assert!(text.ends_with("4 pool set file(s), 1 invalid\n"), "{text}");
    assert_eq!(lines.len(), 6, "{text}");

    // --json: one object, names exact and escaped.
    let text = ok(&t.run(&["list", "localhost", "--json"]));
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["target"], "localhost");
    assert_eq!(v["poolset_dir"], sets.to_str().expect("UTF-8"));
    assert_eq!(v["complete"], true);
    let names: Vec<&str> = v["pool_sets"]
        .as_array()
        .expect("pool_sets")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "new\nline.set",
            "team/broken.set",
            "team/db/nested.set",
            "top.set"
        ]
    );
    let sets_json = &v["pool_sets"];
    assert_eq!(sets_json[0]["name_escaped"], "new\\nline.set");
    assert_eq!(sets_json[1]["valid"], false);
    assert_eq!(sets_json[1]["line"], 2);
    assert_eq!(sets_json[1]["error"], "incorrect format of size");
    assert_eq!(sets_json[2]["valid"], true);
    assert_eq!(sets_json[2]["pool_size"], 8 << 20);
    assert_eq!(sets_json[2]["replicas"], 1);
    assert_eq!(sets_json[2]["options"], serde_json::json!(["NOHDRS"]));

    // A name listed can be used: create the nested pool by it.
    ok(&t.run(&[
        "create",
        "localhost",
        "team/db/nested.set",
        "--size",
        "8M",
        "--no-headers",
    ]));
    assert!(part.exists());
}

#[test]
fn list_of_an_empty_or_missing_poolset_dir() {
    let t = Target::new();
    let text = ok(&t.run(&["list", "localhost"]));
    assert!(
        text.starts_with("no pool set files in rpmemd's poolset-dir"),
        "{text}"
    );
    let v: Value =
        serde_json::from_str(&ok(&t.run(&["list", "localhost", "--json"]))).expect("JSON");
    assert_eq!(v["pool_sets"], serde_json::json!([]));

    fs::remove_dir(t.path("sets")).expect("rmdir");
    for json in [false, true] {
        let mut args = vec!["list", "localhost"];
        if json {
            args.push("--json");
        }
        let out = t.run(&args);
        let err = fails(
            &out,
            EXIT_FAILED,
            "rpmem list: cannot list the pool set files on localhost",
        );
        assert!(
            err.contains("cannot open the pool set directory")
                && err.contains(t.path("sets").to_str().expect("UTF-8"))
                && err.contains("No such file or directory"),
            "{err}"
        );
        assert_eq!(stdout(&out), "", "nothing claims a list");
    }
}

/// A shell script as the rpmemd command: it ignores `--list` and prints `output`.
fn fake_rpmemd(t: &Target, name: &str, output: &str) -> String {
    let script = t.path(name);
    fs::write(&script, format!("#!/bin/sh\n{output}\n")).expect("script");
    format!("/bin/sh {}", script.display())
}

#[test]
fn list_reads_rpmemd_strictly() {
    let t = Target::new();
    let cases = [
        (
            "bad_field.sh",
            r"printf 'rpmemd-list\t1\t/d\nset\ta.set\tok\tlots\t1\t-\nend\t1\n'",
            "line 2 (set\\ta.set\\tok\\tlots\\t1\\t-): invalid pool size \"lots\"",
        ),
        (
            "no_end.sh",
            r"printf 'rpmemd-list\t1\t/d\nset\ta.set\tok\t4096\t1\t-\n'",
            "no end record",
        ),
        (
            "raw_escape.sh",
            r"printf 'rpmemd-list\t1\t/d\nset\ta\033[2J.set\tok\t4096\t1\t-\nend\t1\n'",
            "line 2 (set\\ta\\x1b[2J.set",
        ),
        (
            "huge.sh",
            "head -c 2000000 /dev/zero",
            "longer than 1024 KiB",
        ),
    ];
    for (name, script, want) in cases {
        let cmd = fake_rpmemd(&t, name, script);
        let out = rpmem(
            &["list", "localhost", "--launch", "local", "--cmd", &cmd],
            &[],
        );
        let err = fails(
            &out,
            EXIT_CONNECTION,
            "protocol error from rpmemd on localhost",
        );
        assert!(err.contains(want), "{name}: {err}");
        assert!(!err.contains('\x1b'), "{name}: a raw escape reached stderr");
        assert_eq!(stdout(&out), "", "{name}");
    }
    // An rpmemd without --list (an older one) is named as such.
    let cmd = fake_rpmemd(
        &t,
        "old.sh",
        "echo \"error: unexpected argument '--list' found\" >&2; exit 2",
    );
    let out = rpmem(
        &["list", "localhost", "--launch", "local", "--cmd", &cmd],
        &[],
    );
    fails(&out, EXIT_FAILED, "this rpmemd has no --list");
}

#[test]
fn list_never_prints_rpmemd_texts_raw() {
    let t = Target::new();
    // Escaped control characters in the directory, a name, an error and a reason.
    let cmd = fake_rpmemd(
        &t,
        "escapes.sh",
        r"printf '%s\n' 'rpmemd-list	1	/d\x1b[2J' 'set	a\u{202e}.set	invalid	-	bad\x07\nbell' 'incomplete	dir\x1b]0;x\x07 cannot be read' 'end	1'",
    );
    let args = [
        "list",
        "localhost",
        "--launch",
        "local",
        "--cmd",
        cmd.as_str(),
    ];
    let out = rpmem(&args, &[]);
    let text = ok(&out);
    assert!(!text.contains(['\x1b', '\x07', '\u{202e}']), "{text:?}");
    assert!(text.contains("poolset-dir \"/d\\x1b[2J\""), "{text}");
    assert!(
        text.contains("a\\u{202e}.set  INVALID: bad\\x07\\nbell"),
        "{text}"
    );
    assert!(
        text.contains("the list may be incomplete: dir\\x1b]0;x\\x07 cannot be read"),
        "{text}"
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v: Value = serde_json::from_str(&ok(&rpmem(&json_args, &[]))).expect("JSON");
    assert_eq!(v["poolset_dir"], "/d\x1b[2J");
    assert_eq!(v["pool_sets"][0]["name"], "a\u{202e}.set");
    assert_eq!(v["pool_sets"][0]["name_escaped"], "a\\u{202e}.set");
    assert_eq!(v["pool_sets"][0]["error"], "bad\x07\nbell");
    assert_eq!(v["complete"], false);
}

#[test]
fn remove_json_says_what_was_removed_and_never_claims_a_failure() {
    let t = Target::new();
    let part = t.poolset("r.set", 4 << 20, false);
    ok(&t.run(&["create", "localhost", "r.set", "--size", "4M", "--quiet"]));

    // A failed removal (the pool is open in another session: its part is locked) prints
    // an object that does not claim success, and keeps the exit status and the message.
    let holder = {
        let cmd = t.cmd();
        let opts = rpmem::Options::builder()
            .launch(rpmem::Launch::Local)
            .command(cmd)
            .build();
        let region = std::sync::Arc::new(rpmem::Region::new(8192).expect("region"));
        rpmem::RemotePool::open("localhost", "r.set", region, 1, &opts).expect("open")
    };
    let out = t.run(&["remove", "localhost", "r.set", "--force", "--json"]);
    let err = fails(&out, EXIT_FAILED, "cannot remove pool set \"r.set\"");
    assert!(err.contains("not removed"), "{err}");
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["pool_set"], "r.set");
    assert!(
        v["error"].as_str().expect("error").contains("not removed"),
        "{v}"
    );
    assert!(v.get("parts_removed").is_none() && v.get("pool_set_file_removed").is_none());
    holder.close().expect("close");
    assert!(part.exists(), "the part was kept");

    // Success: one object saying what was removed.
    let text = ok(&t.run(&["remove", "localhost", "r.set", "--pool-set", "--json"]));
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({
            "ok": true,
            "target": "localhost",
            "pool_set": "r.set",
            "force": false,
            "parts_removed": true,
            "pool_set_file_removed": true,
        })
    );
    assert!(!part.exists() && !t.path("sets/r.set").exists());

    // A removal refused before anything was removed: "ok": false too.
    let out = t.run(&["remove", "localhost", "r.set", "--json"]);
    fails(&out, EXIT_FAILED, "does not exist");
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["ok"], false);
}
