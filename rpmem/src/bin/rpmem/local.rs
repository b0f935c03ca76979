//! A target on this host: rpmemd started directly (local mode) with its own
//! configuration, pool set directory and log file in a scratch directory.
//! Used by `rpmem demo` and `rpmem bench --local`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{CliError, CliResult};

/// The target name of local mode.
pub const LOCAL_TARGET: &str = "localhost";

/// How the rpmemd program was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Given with `--rpmemd`.
    Option,
    /// Next to this program.
    NextToRpmem,
    /// Built by cargo for this checkout, next to this program.
    BuiltNow,
    /// On `$PATH`.
    Path,
}

impl Found {
    /// In words, for the demo's output.
    pub fn describe(self) -> &'static str {
        match self {
            Found::Option => "given with --rpmemd",
            Found::NextToRpmem => "found next to this program",
            Found::BuiltNow => "just built by cargo, next to this program",
            Found::Path => "found on $PATH",
        }
    }
}

/// Finds the rpmemd program: `explicit`, else `rpmemd` next to this
/// program, else (when this program runs under `cargo run` or `cargo
/// test` of this workspace) one built now by cargo into the same target
/// directory and profile, else `rpmemd` on `$PATH`.
///
/// `hint` ends the message when none is found: how to name one.
pub fn find_rpmemd(
    explicit: Option<&Path>,
    hint: &str,
    log: &mut dyn FnMut(&str),
) -> CliResult<(PathBuf, Found)> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok((absolute(p)?, Found::Option))
        } else {
            Err(CliError::Local(format!(
                "the rpmemd program given with --rpmemd, {}, does not exist or is not a file",
                p.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(CliError::io("finding the path of this program"))?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let sibling = dir.join("rpmemd");
    if sibling.is_file() {
        return Ok((sibling, Found::NextToRpmem));
    }
    if let Some(build) = CargoBuild::detect(&dir) {
        log(&format!(
            "rpmemd is not built yet; building it once with: {}",
            build.display()
        ));
        build.run()?;
        if sibling.is_file() {
            return Ok((sibling, Found::BuiltNow));
        }
    }
    if let Some(p) = on_path("rpmemd") {
        return Ok((p, Found::Path));
    }
    Err(CliError::Local(format!(
        "cannot find the rpmemd program: it is not next to {} and not on $PATH; \
         build it with `cargo build --release` (which builds rpmem and rpmemd together) \
         or {hint}",
        exe.display()
    )))
}

/// The program name local mode resolves (see [`resolve_command`]).
pub const RPMEMD: &str = "rpmemd";

/// A local-mode rpmemd command with its program resolved: when the first
/// word is the bare word `rpmemd`, it becomes the path [`find_rpmemd`]
/// finds (next to this program, else built by cargo, else on `$PATH`);
/// any other command is returned unchanged.
pub fn resolve_command(cmd: &str, log: &mut dyn FnMut(&str)) -> CliResult<String> {
    let trimmed = cmd.trim_start();
    let program = trimmed.split_whitespace().next().unwrap_or("");
    if program != RPMEMD {
        return Ok(cmd.to_owned());
    }
    let rest = trimmed.get(program.len()..).unwrap_or("");
    let (path, _) = find_rpmemd(
        None,
        "give its path as the program of --cmd or RPMEM_CMD",
        log,
    )?;
    let text = path.to_string_lossy();
    if text.contains(char::is_whitespace) || text.contains('|') {
        return Err(CliError::Local(format!(
            "the rpmemd program found, {}, has blanks or '|' in its path, which the rpmemd \
             command cannot carry; give a path without them as the program of --cmd or RPMEM_CMD",
            path.display()
        )));
    }
    Ok(format!("{text}{rest}"))
}

fn absolute(p: &Path) -> CliResult<PathBuf> {
    std::path::absolute(p).map_err(CliError::io(format!("resolving {}", p.display())))
}

/// The first executable file `name` in the directories of `$PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// `cargo build -p rpmemd` for the workspace this program was built from,
/// when cargo is running this program (`cargo run`, `cargo test`).
struct CargoBuild {
    cargo: OsString,
    manifest: PathBuf,
    target_dir: PathBuf,
    profile: Vec<String>,
}

impl CargoBuild {
    /// Only when cargo runs this program (`CARGO` and `CARGO_MANIFEST_DIR`
    /// are set, the manifest directory is this package next to the rpmemd
    /// package) and this program lies in `<target-dir>/<profile>/`.
    fn detect(exe_dir: &Path) -> Option<CargoBuild> {
        let cargo = std::env::var_os("CARGO")?;
        let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
        let workspace = manifest_dir.parent()?;
        if !workspace.join("rpmemd").join("Cargo.toml").is_file()
            || !manifest_dir.join("src/bin/rpmem/main.rs").is_file()
        {
            return None;
        }
        let profile_name = exe_dir.file_name()?.to_str()?;
        let target_dir = exe_dir.parent()?.to_path_buf();
        let profile = match profile_name {
            "debug" => Vec::new(),
            "release" => vec!["--release".to_owned()],
            other => vec!["--profile".to_owned(), other.to_owned()],
        };
        Some(CargoBuild {
            cargo,
            manifest: workspace.join("Cargo.toml"),
            target_dir,
            profile,
        })
    }

    fn display(&self) -> String {
        format!(
            "{} build -p rpmemd --bin rpmemd {}--manifest-path {} --target-dir {}",
            Path::new(&self.cargo)
                .file_name()
                .map_or_else(|| "cargo".into(), |n| n.to_string_lossy()),
            self.profile
                .iter()
                .map(|p| format!("{p} "))
                .collect::<String>(),
            self.manifest.display(),
            self.target_dir.display()
        )
    }

    fn run(&self) -> CliResult<()> {
        let status = Command::new(&self.cargo)
            .args(["build", "-p", "rpmemd", "--bin", "rpmemd"])
            .args(&self.profile)
            .arg("--manifest-path")
            .arg(&self.manifest)
            .arg("--target-dir")
            .arg(&self.target_dir)
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(CliError::io("running cargo to build rpmemd"))?;
        if status.success() {
            Ok(())
        } else {
            Err(CliError::Local(format!(
                "building rpmemd with cargo failed ({status}); build it with `cargo build --release` \
                 or give its path with --rpmemd PATH"
            )))
        }
    }
}

/// A scratch directory with rpmemd's configuration, its pool set
/// directory `sets/` and its log file, and the options that start that
/// rpmemd in local mode. Dropping it removes the directory.
#[derive(Debug)]
pub struct LocalTarget {
    dir: tempfile::TempDir,
    rpmemd: PathBuf,
    found: Found,
}

impl LocalTarget {
    /// Finds rpmemd (see [`find_rpmemd`]) and lays out a scratch directory
    /// inside `parent` (default: `/dev/shm` when it is a directory, else
    /// the system's temporary directory).
    pub fn new(
        rpmemd: Option<&Path>,
        parent: Option<&Path>,
        prefix: &str,
        log: &mut dyn FnMut(&str),
    ) -> CliResult<LocalTarget> {
        let (rpmemd, found) = find_rpmemd(rpmemd, "give its path with --rpmemd PATH", log)?;
        let shm = Path::new("/dev/shm");
        let parent = match parent {
            Some(p) => p.to_path_buf(),
            None if shm.is_dir() => shm.to_path_buf(),
            None => std::env::temp_dir(),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix);
        let dir = builder
            .tempdir_in(&parent)
            .or_else(|e| {
                // /dev/shm may exist without being writable: fall back once.
                if parent == shm {
                    builder.tempdir()
                } else {
                    Err(e)
                }
            })
            .map_err(CliError::io(format!(
                "creating a scratch directory in {}",
                parent.display()
            )))?;
        let t = LocalTarget { dir, rpmemd, found };
        fs::create_dir(t.sets_dir())
            .map_err(CliError::io(format!("creating {}", t.sets_dir().display())))?;
        let config = format!(
            "# rpmemd configuration written by rpmem for a local session\n\
             poolset-dir = {}\nlog-file = {}\nlog-level = notice\npersist-general = yes\n",
            t.sets_dir().display(),
            t.log_path().display()
        );
        fs::write(t.config_path(), config).map_err(CliError::io(format!(
            "writing {}",
            t.config_path().display()
        )))?;
        // rpmemd's command line is split at blanks: reach a program whose
        // path has blanks through a link inside the scratch directory.
        if t.rpmemd.to_string_lossy().contains(char::is_whitespace) {
            let link = t.path().join("rpmemd");
            std::os::unix::fs::symlink(&t.rpmemd, &link)
                .map_err(CliError::io(format!("linking {}", link.display())))?;
            let t = LocalTarget { rpmemd: link, ..t };
            return t.check_blank_free();
        }
        t.check_blank_free()
    }

    fn check_blank_free(self) -> CliResult<LocalTarget> {
        if self.path().to_string_lossy().contains(char::is_whitespace) {
            return Err(CliError::Local(format!(
                "the scratch directory {} has blanks in its path, which rpmemd's command line \
                 cannot carry; choose another with --dir",
                self.path().display()
            )));
        }
        Ok(self)
    }

    /// The scratch directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// rpmemd's pool set directory.
    pub fn sets_dir(&self) -> PathBuf {
        self.path().join("sets")
    }

    /// rpmemd's configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.path().join("rpmemd.conf")
    }

    /// rpmemd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.path().join("rpmemd.log")
    }

    /// The rpmemd program and how it was found.
    pub fn rpmemd(&self) -> (&Path, Found) {
        (&self.rpmemd, self.found)
    }

    /// True when the scratch directory is on a memory file system (tmpfs),
    /// where rpmemd's `msync` is cheap.
    pub fn on_tmpfs(&self) -> bool {
        matches!(self.storage(), Storage::Memory(_))
    }

    /// What kind of file system holds the scratch directory (and the pool).
    pub fn storage(&self) -> Storage {
        storage_of(self.path())
    }

    /// Writes pool set file `name` in the pool set directory with one
    /// part of `part_size` bytes (`<name>.part0` in the scratch directory);
    /// `OPTION NOHDRS` when `nohdrs`. Returns the part's path.
    pub fn write_poolset(&self, name: &str, part_size: u64, nohdrs: bool) -> CliResult<PathBuf> {
        let part = self.path().join(format!("{name}.part0"));
        let mut text = String::from("PMEMPOOLSET\n");
        if nohdrs {
            text.push_str("OPTION NOHDRS\n");
        }
        text.push_str(&format!("{part_size} {}\n", part.display()));
        let path = self.sets_dir().join(name);
        fs::write(&path, text).map_err(CliError::io(format!("writing {}", path.display())))?;
        Ok(part)
    }

    /// The command that starts this rpmemd.
    pub fn command(&self) -> String {
        format!(
            "{} -c {}",
            self.rpmemd.display(),
            self.config_path().display()
        )
    }

    /// `base` with local launch and this rpmemd.
    pub fn options(&self, base: &rpmem::Options) -> rpmem::Options {
        base.to_builder()
            .launch(rpmem::Launch::Local)
            .command(self.command())
            .build()
    }

    /// Removes the scratch directory, reporting a failure.
    pub fn close(self) -> CliResult<()> {
        let path = self.path().to_path_buf();
        self.dir
            .close()
            .map_err(CliError::io(format!("removing {}", path.display())))
    }
}

/// What a pool's file system means for the cost of a persist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// tmpfs or ramfs: rpmemd's `msync` does nothing costly.
    Memory(String),
    /// A file system mounted with DAX (persistent memory): rpmemd flushes
    /// CPU caches, no `msync`.
    Pmem(String),
    /// Anything else (ext4 on a disk, ...): each persist is an `msync`.
    Other(String),
}

impl Storage {
    /// The file system type.
    pub fn fs_type(&self) -> &str {
        match self {
            Storage::Memory(t) | Storage::Pmem(t) | Storage::Other(t) => t,
        }
    }

    /// True for tmpfs/ramfs and DAX mounts.
    pub fn is_memory_or_pmem(&self) -> bool {
        !matches!(self, Storage::Other(_))
    }
}

/// The storage of `path`: the mount of `/proc/self/mounts` with the longest
/// mount point that contains it.
pub fn storage_of(path: &Path) -> Storage {
    let real = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut best: Option<(usize, String, String)> = None;
    for line in mounts.lines() {
        let mut f = line.split(' ');
        let (Some(_), Some(point), Some(fstype), Some(opts)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        // /proc/mounts writes blanks in mount points as \040.
        let point = point.replace("\\040", " ");
        if real.starts_with(&point) && best.as_ref().is_none_or(|(len, _, _)| point.len() >= *len) {
            best = Some((point.len(), fstype.to_owned(), opts.to_owned()));
        }
    }
    match best {
        Some((_, t, _)) if t == "tmpfs" || t == "ramfs" => Storage::Memory(t),
        Some((_, t, o)) if o.split(',').any(|x| x == "dax" || x == "dax=always") => {
            Storage::Pmem(t)
        }
        Some((_, t, _)) => Storage::Other(t),
        None => Storage::Other("unknown".to_owned()),
    }
}
